"""Metadata kinds: declared, inferred, recorded; label functions found; check names undeclared ranks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from samplescope import Integration, Subset
from samplescope.analysis.insights.kinds import declared_column_kinds, infer_kind, label_functions
from samplescope.errors import IntegrationError


def _integration(kind=None) -> Integration:
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    integ = Integration("kinds", classes=["a", "b", "c"])
    integ.subset("train")(lambda s: Subset(ids=list(range(30)), data=(x[:30], y[:30])))
    integ.subset("validation")(lambda s: Subset(ids=list(range(10)), data=(x[30:], y[30:])))
    integ.input("image")(lambda smp: smp.data[0][smp.index])
    integ.ground_truth(lambda smp: int(smp.data[1][smp.index]))
    integ.metadata("stats", kind=kind)(
        lambda smp: {"mean": float(smp.data[0][smp.index].mean()), "rank": int(smp.index % 4) + 1}
    )
    return integ


def test_inferred_kinds():
    assert infer_kind(pd.Series(["a", "b"])) == "category"
    assert infer_kind(pd.Series([True, False])) == "category"
    assert infer_kind(pd.Series([1, 2, 3, 2])) == "ordinal"
    assert infer_kind(pd.Series(np.arange(50))) == "number"
    assert infer_kind(pd.Series([0.5, 1.5])) == "number"


def test_label_functions_against_a_groupby():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 500)
    df = pd.DataFrame({"parity": np.where(y % 2, "odd", "even"), "loop": np.isin(y, [0, 4]),
                       "ink": rng.random(500), "const": 1.0, "noisy_parity": (y % 2) ^ (rng.random(500) < 0.01)})
    found = set(label_functions(df, list(df.columns), y))
    brute = {c for c in df.columns if (df.groupby(y)[c].nunique() <= 1).all()}
    assert found == brute == {"parity", "loop", "const"}


def test_declared_kinds_are_expanded_recorded_and_checked():
    integ = _integration(kind={"rank": "ordinal"})
    assert declared_column_kinds(integ) == {"rank": "ordinal"}
    assert integ.identity()["metadata_kinds"] == {"rank": "ordinal"}
    whole = _integration(kind="number")  # one kind for every column the function returns
    assert declared_column_kinds(whole) == {"mean": "number", "rank": "number"}
    with pytest.raises(IntegrationError, match="kind 'size' for column 'x' is not one of"):
        Integration("bad", classes=["a"]).metadata("x", kind="size")


def test_check_names_undeclared_few_valued_integer_columns():
    row = next(r for r in _integration().check().rows if r.function == "stats")
    assert row.status == "ok" and "rank" in row.detail and "kind=" in row.detail
    row = next(r for r in _integration(kind={"rank": "ordinal"}).check().rows if r.function == "stats")
    assert row.status == "ok" and "kind=" not in row.detail

"""Aggregates computed in DuckDB (store/aggregate.py) equal the pandas reference
(analysis.metrics.aggregate) on the same rows: numeric x binned by quantiles (with ties)
or equal widths, through the CASE and the ASOF-join paths, integer, bool and text x grouped
by value, NULL and NaN in x, y and by, a where filter, a subset, and the same errors."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from samplescope.analysis.metrics import aggregate as reference
from samplescope.errors import NotFoundError, ParameterError, SamplescopeError
from samplescope.store import RunDatabase
from samplescope.store.aggregate import aggregate

LIMITS = {"max_bins": 10_000, "max_groups": 1_000, "max_values": 10_000}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    rng = np.random.default_rng(3)
    n = 4000
    frame = pd.DataFrame({
        "sample_id": np.arange(n),
        "subset": rng.choice(["train", "validation"], n),
        "loss": rng.exponential(1.0, n),
        "label": rng.integers(0, 5, n),
        "confidence": rng.random(n),
        "steps": rng.integers(0, 4, n) * 0.25,  # a float with four values: quantile edges tie
        "correct": rng.random(n) > 0.3,
        "name": rng.choice(["a", "b", "c"], n),
        "many": rng.integers(0, 1000, n),
        "group": rng.choice([1.0, 2.0, np.nan], n),
    })  # fmt: skip
    frame.loc[rng.random(n) < 0.05, "confidence"] = np.nan
    frame.loc[rng.random(n) < 0.05, "loss"] = np.nan
    path = tmp_path_factory.mktemp("aggregate") / "samples.duckdb"
    writer = RunDatabase(path, writable=True)
    writer.write_samples(frame)
    writer.close()
    reader = RunDatabase(path)
    yield reader
    reader.close()


def _rows(db, subset=None, where=None):
    return db.samples(subset=subset, where=where)


CASES = list(itertools.product(
    ["confidence", "steps", "label", "many", "correct", "name"],  # float, tied float, int few/many, bool, text
    ["loss", "correct", "count"],
    [None, "label", "group"],  # none, int, float with NaN
))  # fmt: skip


@pytest.mark.parametrize(("x", "y", "by"), CASES)
def test_equals_pandas(db, x, y, by):
    table = _rows(db)
    for bins, binning, subset in [(1, "quantile", None), (7, "quantile", "validation"), (100, "quantile", None),
                                  (7, "uniform", None), (100, "uniform", "train")]:  # fmt: skip
        part = table if subset is None else table[table["subset"] == subset]
        want = reference(part, x, y, by, bins, binning, **LIMITS)
        got = aggregate(db, x, y, by, subset=subset, bins=bins, binning=binning, **LIMITS)
        assert got.attrs == want.attrs
        pd.testing.assert_frame_equal(got, want, rtol=1e-9)


def test_where_equals_pandas_on_the_filtered_rows(db):
    table = _rows(db)
    part = table[(table["label"] >= 2) & table["correct"]]
    got = aggregate(db, "confidence", "loss", "name", where={"label": (2, None), "correct": True}, bins=5, **LIMITS)
    pd.testing.assert_frame_equal(got, reference(part, "confidence", "loss", "name", 5, **LIMITS), rtol=1e-9)


def test_no_row_is_loaded(db, monkeypatch):
    """The rows stay in DuckDB: no full-column read, only answers of at most groups x bins rows."""
    monkeypatch.setattr(db, "samples", lambda *a, **k: pytest.fail("aggregate loaded the rows"))
    sizes = []
    fetch = db.fetch
    monkeypatch.setattr(db, "fetch", lambda sql, params=None: sizes.append(len(out := fetch(sql, params))) or out)
    aggregate(db, "confidence", "loss", "label", bins=20, **LIMITS)
    assert sizes and max(sizes) <= 5 * 20


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": "nope"}, NotFoundError, "x column 'nope' is not in the table"),
        ({"x": "loss", "y": "nope"}, NotFoundError, "y column 'nope'"),
        ({"x": "loss", "by": "nope"}, NotFoundError, "by column 'nope'"),
        ({"x": "loss", "y": "name"}, SamplescopeError, "not numeric"),
        ({"x": "loss", "bins": 0}, ParameterError, "bins=0 is out of range"),
        ({"x": "loss", "binning": "log"}, SamplescopeError, "binning='log' is unknown"),
        ({"x": "loss", "by": "many", "max_groups": 10}, ParameterError, "at most 10 series"),
        ({"x": "many", "bins": 2000, "max_values": 100}, ParameterError, "at most 100 are allowed"),
    ],
)
def test_the_same_errors_as_pandas(db, kwargs, error, match):
    table = _rows(db)
    limits = {**LIMITS, **{k: kwargs.pop(k) for k in list(kwargs) if k.startswith("max_")}}
    with pytest.raises(error, match=match):
        reference(table, **kwargs, **limits)
    with pytest.raises(error, match=match):
        aggregate(db, **kwargs, **limits)


def test_a_column_with_no_values_to_bin(db):
    with pytest.raises(SamplescopeError, match="no non-NaN values to bin"):
        aggregate(db, "confidence", where={"label": 99}, **LIMITS)

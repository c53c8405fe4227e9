"""compare(): fixed, broken and still-wrong samples, per subset and per group, against pandas on both tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import samplescope
from samplescope.cli import main
from samplescope.compare import compare
from samplescope.errors import RunError
from samplescope.testing import make_tiny_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    a = make_tiny_run(root / "a", epochs=1, seed=1)  # a weak model
    b = make_tiny_run(root / "b", epochs=8, seed=0)
    return a, b


@pytest.fixture(scope="module")
def tables(runs):
    a, b = (samplescope.open_run(p).samples() for p in runs)
    return a, b


def test_per_sample_status_equals_pandas(runs, tables):
    ta, tb = tables
    cmp = compare(*runs)
    both = ta.merge(tb, on=["subset", "key"], suffixes=("_a", "_b"))
    ok_a, ok_b = both["prediction_a"] == both["label_a"], both["prediction_b"] == both["label_b"]
    got = cmp.samples.set_index(["subset", "key"])["status"]
    want = pd.Series(np.select([~ok_a & ok_b, ok_a & ~ok_b, ~ok_a & ~ok_b], ["fixed", "broken", "still_wrong"],
                               "still_right"), index=pd.MultiIndex.from_frame(both[["subset", "key"]]))
    assert (got.loc[want.index] == want).all()
    np.testing.assert_allclose(cmp.samples["loss_change"], cmp.samples["loss_b"] - cmp.samples["loss_a"])
    assert cmp.unmatched == {}
    assert (cmp.samples["status"] == "fixed").sum() > 0  # the stronger model fixes something


def test_summary_and_groups_equal_pandas(runs, tables):
    ta, tb = tables
    cmp = compare(*runs)
    for r in cmp.summary.itertuples():
        pa, pb = ta[ta["subset"] == r.subset], tb[tb["subset"] == r.subset]
        assert r.accuracy_a == pytest.approx((pa["prediction"] == pa["label"]).mean())
        assert r.accuracy_b == pytest.approx((pb["prediction"] == pb["label"]).mean())
        assert r.mean_loss_b - r.mean_loss_a == pytest.approx(pb["loss"].mean() - pa["loss"].mean(), rel=1e-5)
        assert r.fixed + r.broken + r.still_wrong <= r.samples
    by_label = cmp.by("label")
    part = cmp.samples
    for r in by_label.itertuples():
        rows = part[part["label"] == samplescope.open_run(runs[0]).classes.index(r.label)]
        assert r.fixed == int((rows["status"] == "fixed").sum())
        assert r.broken == int((rows["status"] == "broken").sum())
    assert by_label["samples"].sum() == len(part)
    assert cmp.by("cluster")["samples"].sum() == len(part)
    assert cmp.by("ink")["samples"].sum() == len(part)


def test_confusion_change_equals_difference_of_matrices(runs):
    cmp = compare(*runs)
    ma = samplescope.open_run(runs[0]).metrics("validation")["confusion"]
    mb = samplescope.open_run(runs[1]).metrics("validation")["confusion"]
    np.testing.assert_array_equal(cmp.confusion_change("validation"), mb - ma)


def test_tags_and_insights(runs, tmp_path):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(runs[1], b)
    run_b = samplescope.open_run(b)
    run_b.tag([0, 1, 2, 3], "checked")
    cmp = compare(runs[0], b)
    t = cmp.by("tag:checked").set_index("tag:checked")
    assert t.loc["in checked", "samples"] == 4
    assert set(cmp.insights["status"]) <= {"resolved", "persists", "new"}
    assert len(cmp.insights[cmp.insights["status"] != "new"]) == len(samplescope.open_run(runs[0]).insights())


def test_another_integration_is_refused(runs, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(runs[1], other)
    info = json.loads((other / "run.json").read_text())
    info["integration"]["name"] = "something-else"
    (other / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunError, match="different integrations"):
        compare(runs[0], other)


def test_cli_prints_and_writes(runs, tmp_path, capsys):
    assert main(["compare", str(runs[0]), str(runs[1]), "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "fixed" in out and "validation" in out
    data = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert {r["subset"] for r in data["summary"]} == {"train", "validation"}
    back = pd.read_parquet(tmp_path / "cmp" / "samples.parquet")
    assert len(back) == 1797


def test_a_spec_is_evaluated_on_both_runs(runs, tables, tmp_path):
    """compare(...).checks(spec) and `compare --spec`: each run's value is its own table's, computed here."""
    spec = tmp_path / "checks.toml"
    spec.write_text('[[check]]\nname = "val acc"\nsubset = "validation"\nmetric = "accuracy"\nop = ">="\n'
                    'threshold = 0.9\n\n[[check]]\nname = "errors of 3s"\nclasses = ["3"]\nmetric = "error_rate"\n'
                    'op = "<="\nthreshold = 0.05\n')  # fmt: skip
    got = compare(*runs).checks(spec).set_index("check")
    for (table, side) in zip(tables, ("a", "b"), strict=True):
        val = table[table["subset"] == "validation"]
        acc = (val["prediction"] == val["label"]).mean()
        threes = table[table["label"] == 3]
        err = (threes["prediction"] != threes["label"]).mean()
        assert got.loc["val acc", f"value_{side}"] == pytest.approx(acc)
        assert got.loc["val acc", f"passed_{side}"] == (acc >= 0.9)
        assert got.loc["errors of 3s", f"value_{side}"] == pytest.approx(err)
        assert got.loc["errors of 3s", f"count_{side}"] == len(threes)
    assert main(["compare", str(runs[0]), str(runs[1]), "--spec", str(spec)]) == 0


def test_samplescope_compare_stays_callable_after_the_module_is_imported(runs):
    import importlib

    import samplescope

    first = samplescope.compare(*runs)  # the package's function imports the module...
    importlib.import_module("samplescope.compare")  # ...which Python binds on the package
    second = samplescope.compare(*runs)
    assert second.samples.equals(first.samples)

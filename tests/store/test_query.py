"""Queries pushed down to DuckDB equal the same query done in pandas on the whole table."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest

import samplescope
from samplescope.analysis.metrics import aggregate, classification_metrics
from samplescope.errors import NotFoundError, ParameterError
from samplescope.store import RunDatabase, layout
from samplescope.testing import make_tiny_run


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("query") / "run")


@pytest.fixture(scope="module")
def run(run_path):
    return samplescope.open_run(run_path)


@pytest.fixture(scope="module")
def table(run):
    return run.samples()  # the whole table, the reference every query is checked against


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_dtype=False)


CASES = [
    ({"label": 3}, lambda t: t["label"] == 3),
    ({"label": [1, 2], "subset": "validation"}, lambda t: t["label"].isin([1, 2]) & (t["subset"] == "validation")),
    ({"loss": (0.5, None)}, lambda t: t["loss"] >= 0.5),
    ({"loss": (None, 0.01), "prediction": [7]}, lambda t: (t["loss"] <= 0.01) & (t["prediction"] == 7)),
    ([("prediction", "!=", 3), ("confidence", "<", 0.9)], lambda t: (t["prediction"] != 3) & (t["confidence"] < 0.9)),
    ([("label", "not in", [0, 1, 2])], lambda t: ~t["label"].isin([0, 1, 2])),
    ([("sample_id", "in", [5, 3, 1000, 17])], lambda t: t["sample_id"].isin([5, 3, 1000, 17])),
    ([("label", "in", [])], lambda t: t["label"] < -100),
    ("loss > 1 AND label <> prediction", lambda t: (t["loss"] > 1) & (t["label"] != t["prediction"])),
]


@pytest.mark.parametrize(("where", "mask"), CASES)
def test_where_equals_pandas(run, table, where, mask):
    _same(run.samples(where=where), table[mask(table)])
    assert run.count(where=where) == int(mask(table).sum())


@pytest.mark.parametrize("order_by", ["-loss", "confidence", ["label", "-loss"], ["-label", "margin"], "-sample_id"])
@pytest.mark.parametrize(("limit", "offset"), [(10, 0), (25, 40), (None, 1790), (0, 0)])
def test_order_and_pages_equal_pandas(run, table, order_by, limit, offset):
    names = [order_by] if isinstance(order_by, str) else order_by
    by = [n.lstrip("-") for n in names]
    ascending = [not n.startswith("-") for n in names]
    if "sample_id" not in by:
        by, ascending = [*by, "sample_id"], [*ascending, True]
    want = table.sort_values(by, ascending=ascending, kind="stable")
    want = want.iloc[offset:] if limit is None else want.iloc[offset : offset + limit]
    _same(run.samples(order_by=order_by, limit=limit, offset=offset), want)


def test_pages_cover_every_row_once(run, table):
    seen = pd.concat([run.samples(columns=["loss"], order_by="-loss", limit=100, offset=o)
                      for o in range(0, len(table), 100)])
    assert sorted(seen["sample_id"]) == list(range(len(table)))


def test_columns_and_subset(run, table):
    got = run.samples(columns=["loss", "label"], subset="validation", where={"label": 4})
    want = table.loc[(table["subset"] == "validation") & (table["label"] == 4), ["sample_id", "loss", "label"]]
    _same(got, want)


def test_bad_queries_name_the_problem(run):
    with pytest.raises(NotFoundError, match="unknown column 'nope'"):
        run.samples(where={"nope": 1})
    with pytest.raises(NotFoundError, match="unknown column 'x'"):
        run.samples(order_by="-x")
    with pytest.raises(ParameterError, match="limit=-1"):
        run.samples(limit=-1)
    with pytest.raises(ParameterError, match="op 'like'"):
        run.samples(where=[("label", "like", 3)])
    with pytest.raises(ParameterError, match="not a valid filter"):
        run.samples(where="loss >>> 1")
    with pytest.raises(NotFoundError, match="Unknown subset"):
        run.samples(subset="tests")


def test_values_are_bound_not_spliced(run):
    """A value that looks like SQL is only a value."""
    assert len(run.samples(where={"subset": "train' OR '1'='1"})) == 0


def test_a_sql_where_cannot_touch_files(run, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with pytest.raises(ParameterError, match="not a valid filter"):
        run.samples(where=f"label IN (SELECT a FROM read_csv('{secret}'))")


def test_metrics_equal_the_in_memory_reference(run, table):
    for subset in run.subsets:
        part = table[table["subset"] == subset]
        want = classification_metrics(part["label"], part["prediction"], part["loss"], len(run.classes))
        got = run.metrics(subset)
        assert got["count"] == want["count"]
        np.testing.assert_array_equal(got["confusion"], want["confusion"])
        assert got["accuracy"] == pytest.approx(want["accuracy"])
        assert got["mean_loss"] == pytest.approx(want["mean_loss"])
        pd.testing.assert_frame_equal(got["per_class"], want["per_class"], check_dtype=False)


def test_metrics_equal_scikit_learn(run, table):
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_score

    part = table[table["subset"] == "validation"]
    got = run.metrics("validation")
    assert got["accuracy"] == pytest.approx(accuracy_score(part["label"], part["prediction"]))
    np.testing.assert_array_equal(got["confusion"], confusion_matrix(part["label"], part["prediction"],
                                                                      labels=range(10)))
    p = precision_score(part["label"], part["prediction"], labels=range(10), average=None, zero_division=np.nan)
    np.testing.assert_allclose(got["per_class"]["precision"], p, equal_nan=True)


@pytest.mark.parametrize(("x", "y", "by"), [("confidence", "correct", None), ("loss", "loss", "label"),
                                            ("label", "count", None), ("ink", "loss", "subset")])
def test_aggregate_equals_the_whole_table_version(run, table, x, y, by):
    for subset in (None, "validation"):
        part = table if subset is None else table[table["subset"] == subset]
        _same(run.aggregate(x, y=y, by=by, subset=subset), aggregate(part, x=x, y=y, by=by))


def test_aggregate_with_where_equals_pandas_on_the_filtered_rows(run, table):
    part = table[table["label"].isin([1, 2]) & (table["subset"] == "validation")]
    got = run.aggregate("confidence", "loss", by="label", subset="validation", bins=4,
                        where={"label": [1, 2]}, binning="uniform")  # fmt: skip
    _same(got, aggregate(part, x="confidence", y="loss", by="label", bins=4, binning="uniform"))
    with pytest.raises(NotFoundError, match="Unknown subset 'test'"):
        run.aggregate("confidence", subset="test")


def test_one_table_after_analysis_and_schema_1_still_reads(run_path, tmp_path, table):
    """The analysis is stored in the samples table (no join); a run whose analysis is in a separate
    table (schema 1) reads the same."""
    db = RunDatabase(run_path / layout.DATABASE)
    assert "analysis" not in db.tables()
    db.close()
    old = tmp_path / "schema1"
    shutil.copytree(run_path, old)
    con = duckdb.connect(str(old / layout.DATABASE))
    base = [c for c in ("sample_id", "subset", "index", "key", "label") if c in table.columns]
    analysis = [c for c in table.columns if c in samplescope.open_run(run_path).info["analysis"]["columns"]]
    metadata = [c for c in table.columns if c not in base and c not in analysis]
    keep = ", ".join(f'"{c}"' for c in base + metadata)
    extra = ", ".join(f'"{c}"' for c in ["sample_id", *analysis])
    con.execute(f"CREATE TABLE analysis AS SELECT {extra} FROM samples")
    con.execute(f"CREATE OR REPLACE TABLE samples AS SELECT {keep} FROM samples")
    con.execute("DELETE FROM meta WHERE key IN ('integration_columns', 'analysis_columns')")
    con.close()
    again = samplescope.open_run(old)
    _same(again.samples()[table.columns], table)
    _same(again.samples(where={"label": 2}, order_by="-loss", limit=5),
          table[table["label"] == 2].sort_values(["loss", "sample_id"], ascending=[False, True]).head(5))

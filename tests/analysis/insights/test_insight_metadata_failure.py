"""MetadataPredictsFailure names the metadata slice that drives errors, judged against the classes."""

from __future__ import annotations

import numpy as np

from samplescope.analysis.insights import MetadataPredictsFailure
from samplescope.checks import parse_check

from . import (
    make_data,
    plant_bad_category,
    plant_class_confound,
    plant_metadata_trend,
    plant_within_class,
)


def _errors_and_expected(ctx, sample_ids):
    """Brute force: errors of the slice and the errors its classes predict (pandas groupby)."""
    df = ctx.samples[ctx.samples["label"] >= 0]
    df = df.assign(error=~df["correct"])
    rate = df.groupby("label")["error"].mean()
    inside = df[df["sample_id"].isin(sample_ids)]
    return int(inside["error"].sum()), float(inside["label"].map(rate).sum())


def test_numeric_tail_is_named_with_its_errors_against_brute_force():
    d = make_data(n_per_class=600, seed=0)
    plant_metadata_trend(d, "difficulty")
    finder = MetadataPredictsFailure()
    ctx = d.context()
    insights = finder.find(ctx)
    columns = [i.details["column"] for i in insights]
    print([i.text for i in insights])
    assert columns[0] == "difficulty", columns
    assert "brightness" not in columns  # pure noise is not reported
    top = insights[0]
    assert top.details["where"]["difficulty"]["min"] > 0.5  # the high tail
    assert top.text.startswith("Samples with difficulty >= ")
    # every sample of the slice is listed (it is small enough), and its numbers are right
    cut = top.details["where"]["difficulty"]["min"]
    members = d.sample_id[(d.metadata["difficulty"] >= cut) & (d.labels >= 0)]
    assert top.details["n"] == len(members)
    o, e = _errors_and_expected(ctx, members)
    assert top.details["errors"] == o and abs(top.details["expected_errors"] - e) < 1e-6
    assert abs(top.details["accounted_errors"] - (o - e)) < 1e-6
    # what to do, with a population test samplescope test can parse
    act = top.details["action"]
    assert act["verb"] == "collect" and "difficulty" in act["text"]
    check = parse_check(act["test"], "test")
    assert check.metric == "error_rate" and check.op == "<=" and check.threshold >= top.details["error_rate"]
    assert set(finder.column_table_["column"]) <= {"difficulty", "brightness", "scanner", "rotated"}


def test_low_tail_is_found_when_errors_fall_with_the_column():
    d = make_data(n_per_class=600, seed=1)
    plant_metadata_trend(d, "sharpness")
    d.metadata["sharpness"] = 1 - d.metadata["sharpness"]
    [top, *_] = MetadataPredictsFailure().find(d.context())
    assert top.details["column"] == "sharpness" and "max" in top.details["where"]["sharpness"]
    assert "sharpness <= " in top.text


def test_bad_category_is_named():
    d = make_data(n_per_class=600, seed=2)
    plant_bad_category(d, "scanner", "b", rate=0.25)
    insights = MetadataPredictsFailure().find(d.context())
    assert [(i.details["column"], i.details.get("value")) for i in insights] == [("scanner", "b")]
    assert insights[0].text.startswith("Samples with scanner = b (")
    assert insights[0].details["where"] == {"scanner": "b"}


def test_a_column_that_only_says_the_class_explains_nothing():
    """A hard class and columns that follow it: the class is the story, not the columns."""
    d = make_data(n_per_class=600, seed=3)
    plant_class_confound(d, cls=0, rate=0.2)
    ctx = d.context()
    assert "parity" in ctx.label_functions and "parity" not in ctx.explaining_columns
    insights = MetadataPredictsFailure().find(ctx)
    named = {i.details["column"] for i in insights}
    print([i.text for i in insights])
    assert "parity" not in named and "stroke" not in named


def test_a_within_class_slice_is_narrowed_to_its_class():
    d = make_data(n_per_class=600, seed=4)
    planted = plant_within_class(d, cls=2, column="slant")
    ctx = d.context()
    [top, *_] = MetadataPredictsFailure().find(ctx)
    print(top.text)
    assert top.details["column"] == "slant" and top.details["classes"] == ["c2"]
    assert top.text.startswith("c2s with slant >= ")
    listed = set(top.sample_ids)
    assert len(listed & set(planted.tolist())) / len(listed) >= 0.8
    assert top.details["action"]["test"]["classes"] == ["c2"]


def test_declared_kinds_class_and_ordinal():
    d = make_data(n_per_class=1000, n_classes=3, error_rate=0.1, seed=5)
    rng = np.random.default_rng(0)
    # a class-index column: the class the sample looks most like; wrong for the failures
    pred = d.probs.argmax(axis=1)
    d.metadata["looks_like"] = np.where(rng.random(d.n) < 0.9, pred, d.truth)
    d.metadata["rank"] = rng.integers(1, 4, d.n)
    ctx = d.context(metadata_kinds={"looks_like": "class"})
    assert ctx.kind_of("looks_like") == "class" and ctx.kind_of("rank") == "ordinal"
    assert ctx.kind_of("rotated") == "category" and ctx.kind_of("brightness") == "number"
    insights = MetadataPredictsFailure().find(ctx)
    top = next(i for i in insights if i.details["column"] == "looks_like")
    assert "looks_like = c" in top.text  # by class name, not index


def test_nothing_on_clean_data():
    assert MetadataPredictsFailure().find(make_data(n_per_class=600, seed=3).context()) == []

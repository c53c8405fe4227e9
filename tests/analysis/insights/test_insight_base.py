"""Insight, InsightContext, the shared neighbour search and find_insights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from samplescope.analysis.insights import Insight, InsightContext, find_insights
from samplescope.analysis.insights.base import saturate, to_json
from samplescope.analysis.neighbors import NeighborIndex
from samplescope.errors import SamplescopeError

from . import make_data, make_problem_data


def test_insight_to_dict_is_plain_json():
    insight = Insight(
        "outlier",
        np.float32(0.25),
        [np.int64(3), 4],
        "Two samples are odd.",
        "Odd",
        {"scores": {np.int64(3): np.float64(0.5)}, "arr": np.arange(2), "nan": float("nan")},
    )
    d = insight.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["details"] == {"scores": {"3": 0.5}, "arr": [0, 1], "nan": None}
    assert d["sample_ids"] == [3, 4] and isinstance(d["severity"], float)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "nonsense"}, "kind 'nonsense' is not one of"),
        ({"severity": 1.5}, r"severity 1\.5 .* outside \[0, 1\]"),
        ({"text": "  "}, "empty text"),
    ],
)
def test_insight_rejects_bad_values(kwargs, match):
    base = {"kind": "outlier", "severity": 0.5, "sample_ids": [1], "text": "x", "title": "t"}
    with pytest.raises(SamplescopeError, match=match):
        Insight(**{**base, **kwargs})


def test_saturate_and_to_json():
    assert saturate(0, 0.1) == 0 and saturate(0.1, 0.1) == 0.5 and saturate(-3, 1) == 0
    assert 0.99 < saturate(100, 1) < 1
    assert to_json({1: (np.bool_(True), np.inf)}) == {"1": [True, None]}


def test_context_rejects_misaligned_latent():
    d = make_data(n_per_class=20)
    with pytest.raises(SamplescopeError, match="latent has 99 rows but samples has 100 rows"):
        InsightContext(samples=d.frame(), latent=d.latent[:99])


def test_context_rejects_missing_columns_and_duplicate_ids():
    d = make_data(n_per_class=20)
    with pytest.raises(SamplescopeError, match=r"lacks column.*loss"):
        InsightContext(samples=d.frame().drop(columns="loss"), latent=d.latent)
    df = d.frame()
    df.loc[1, "sample_id"] = df.loc[0, "sample_id"]
    with pytest.raises(
        SamplescopeError, match=f"sample_id {df.loc[0, 'sample_id']} more than once"
    ):
        InsightContext(samples=df, latent=d.latent)
    with pytest.raises(SamplescopeError, match=r"metadata column.*nope"):
        InsightContext(samples=d.frame(), latent=d.latent, metadata_columns=["nope"])
    with pytest.raises(SamplescopeError, match=r"2-D \(N, D\), got shape \(100,\)"):
        InsightContext(samples=d.frame(), latent=d.latent[:, 0])


def test_context_defaults_class_names_from_probabilities():
    d = make_data(n_per_class=20)
    ctx = InsightContext(samples=d.frame(), latent=d.latent)
    assert ctx.class_names == ["0", "1", "2", "3", "4"]
    assert ctx.probabilities.shape == (100, 5)


def _brute_force_reference(latent, reference, k):
    """Each row's k nearest reference rows by cosine, itself excluded, in float64."""
    unit = latent / np.linalg.norm(latent, axis=1, keepdims=True)
    sims = unit.astype(np.float64) @ unit.T.astype(np.float64)
    sims[:, ~reference] = -np.inf
    np.fill_diagonal(sims, -np.inf)
    pos = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return 1 - np.take_along_axis(sims, pos, 1), pos


@pytest.mark.parametrize("exact_max", [10**6, 0])  # exact, and the IVF index forced on
def test_reference_neighbors_match_brute_force(exact_max):
    d = make_data(n_per_class=300, seed=1)
    engine = NeighborIndex(exact_max=exact_max).fit(d.latent)
    ctx = d.context(neighbors=engine)
    dist, rows = ctx.reference_neighbors(10)
    want_dist, want_rows = _brute_force_reference(d.latent, d.subset == "train", 10)
    assert not (rows == np.arange(d.n)[:, None]).any(), "a row was returned as its own neighbour"
    assert (d.subset[rows] == "train").all()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, want_rows, strict=True)])
    if exact_max:
        assert engine.kind_ == "exact"
        np.testing.assert_allclose(dist, want_dist, atol=1e-5)
        assert recall > 0.999
    else:
        assert engine.kind_ == "ivf" and engine.recall_ >= 0.95
        assert recall >= 0.95, f"IVF recall {recall:.3f}"


def test_context_rejects_an_engine_of_another_latent():
    d = make_data(n_per_class=20)
    with pytest.raises(SamplescopeError, match="indexes 40 rows but latent has"):
        d.context(neighbors=NeighborIndex().fit(d.latent[:40]))


def test_reference_neighbors_are_training_rows_and_cached():
    d = make_data(n_per_class=40)
    ctx = d.context()
    dist, rows = ctx.reference_neighbors(5)
    assert dist.shape == rows.shape == (200, 5)
    assert (ctx.subsets[rows] == "train").all()
    assert not (rows == np.arange(200)[:, None]).any()
    assert np.all(np.diff(dist, axis=1) >= -1e-6)
    _, rows3 = ctx.reference_neighbors(3)
    np.testing.assert_array_equal(rows3, rows[:, :3])


def test_find_insights_sorted_and_covers_every_kind():
    d, _ = make_problem_data()
    insights = find_insights(d.context(), n_threads=1)
    severities = [i.severity for i in insights]
    assert severities == sorted(severities, reverse=True)
    kinds = {i.kind for i in insights}
    assert {
        "low_performance_cluster",
        "mislabel",
        "leakage",
        "outlier",
        "metadata_failure",
    } <= kinds


def test_reading_insights_does_not_import_the_finders_libraries():
    """The server reads stored insights (Insight, from .base) while another of its threads may
    be importing scikit-learn; reading must not import it too (concurrent imports can fail)."""
    import subprocess
    import sys

    code = (
        "import sys; from samplescope.analysis.insights import Insight; "
        "assert 'sklearn' not in sys.modules, 'sklearn imported'; "
        "from samplescope.analysis.insights import Duplicates; "
        "assert 'samplescope.analysis.insights.duplicates' in sys.modules and Duplicates.__name__ == 'Duplicates'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

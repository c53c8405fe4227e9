"""LowPerformanceClusters finds a planted failing region and names what sets it apart."""

from __future__ import annotations

import numpy as np
import pytest

from samplescope.analysis.insights import LowPerformanceClusters
from samplescope.analysis.insights.clusters import describe_metadata
from samplescope.errors import SamplescopeError

from . import make_data, plant_failing_cluster, plant_overfit_cluster


def _best_match(insights, planted):
    planted = set(planted.tolist())
    return max(insights, key=lambda i: len(planted & set(i.sample_ids)))


def test_planted_failing_cluster_is_found_with_its_metadata():
    d = make_data(n_per_class=400, seed=1)
    planted = plant_failing_cluster(d, n=80)
    ctx = d.context()
    finder = LowPerformanceClusters(random_state=0)
    insights = [i for i in finder.find(ctx) if i.kind == "low_performance_cluster"]
    assert insights, "the planted cluster was not reported"
    top = _best_match(insights, planted)
    recall = len(set(planted.tolist()) & set(top.sample_ids)) / len(planted)
    print(f"planted cluster recall {recall:.2f}: {top.text}")
    assert recall >= 0.9, f"recall {recall:.2f}"
    assert top is insights[0], "the planted cluster should be the most severe"
    assert top.details["metadata"][0]["column"] == "brightness"
    assert "higher brightness" in top.text
    assert top.details["confusion"]["label"] == 1 and top.details["confusion"]["prediction"] == 2
    assert "c1 is confused with c2" in top.text
    assert top.details["error_rate"] >= 2 * top.details["overall_error_rate"]

    labels = finder.cluster_labels_
    assert labels.shape == (ctx.n_rows,) and labels.dtype.kind == "i"
    assert labels.min() == 0 and labels.max() == finder.n_clusters_ - 1
    rows = np.isin(d.sample_id, planted)
    assert np.bincount(labels[rows]).max() >= 0.9 * rows.sum()  # the blob is one cluster


def test_clean_data_reports_no_cluster():
    ctx = make_data(n_per_class=400, seed=2).context()
    insights = LowPerformanceClusters(random_state=0).find(ctx)
    assert insights == [], [i.text for i in insights]


def test_planted_overfit_cluster():
    d = make_data(n_per_class=400, seed=3)
    planted = plant_overfit_cluster(d)
    insights = [
        i
        for i in LowPerformanceClusters(random_state=0).find(d.context())
        if i.kind == "overfitting"
    ]
    assert insights, "the overfit cluster was not reported"
    top = _best_match(insights, planted)
    assert top.details["ratio"] >= 3 and top.details["n_train"] >= 20
    # ids are the cluster's held-out samples
    assert set(top.sample_ids) <= set(planted.tolist()) | set(
        d.sample_id[d.subset == "validation"].tolist()
    )
    assert "looks overfit" in top.text


def test_describe_metadata_kinds():
    d = make_data(n_per_class=100, seed=4)
    mask = np.zeros(d.n, bool)
    mask[:100] = True
    d.metadata["brightness"][:100] += 1.0
    d.metadata["scanner"][:100] = "c"
    d.metadata["rotated"][:100] = True
    found = describe_metadata(d.context(), mask, top=3)
    assert {f["column"]: f["kind"] for f in found} == {
        "brightness": "number",
        "scanner": "category",
        "rotated": "category",  # a bool is a two-valued category
    }
    scanner = next(f for f in found if f["column"] == "scanner")
    assert scanner["value"] == "c" and scanner["inside"] == 1.0


def test_bad_n_clusters():
    ctx = make_data(n_per_class=20).context()
    with pytest.raises(SamplescopeError, match="n_clusters='many'"):
        LowPerformanceClusters(n_clusters="many").find(ctx)
    with pytest.raises(SamplescopeError, match=r"n_clusters=500.*exceeds the 100 samples"):
        LowPerformanceClusters(n_clusters=500).find(ctx)


def test_kmeans_on_a_sample_matches_the_full_copy(monkeypatch):
    """Above the full-copy size k-means trains on a seeded sample and assigns in blocks: clusters
    as tight as the full copy's (a large run's path, forced on a small one by lower thresholds)."""
    from samplescope.analysis.insights import clusters

    d = make_data(n_per_class=400, seed=1)
    unit = d.latent / np.linalg.norm(d.latent, axis=1, keepdims=True)

    def tightness(labels):
        """Mean cosine of each row to its cluster's mean direction, and the share of rows whose
        nearest mean direction (brute force) is their own cluster's."""
        means = np.stack([unit[labels == c].mean(axis=0) for c in range(8)])
        sim = unit @ (means / np.linalg.norm(means, axis=1, keepdims=True)).T
        return sim[np.arange(len(unit)), labels].mean(), (sim.argmax(axis=1) == labels).mean()

    full = LowPerformanceClusters(random_state=0, n_clusters=8)
    full.find(d.context())
    monkeypatch.setattr(clusters, "_KMEANS_FULL_MAX", 100)
    monkeypatch.setattr(clusters, "_KMEANS_POINTS", 64)
    monkeypatch.setattr(clusters, "_ASSIGN_BLOCK", 333)
    ctx = d.context()
    sampled = LowPerformanceClusters(random_state=0, n_clusters=8)
    sampled.find(ctx)
    assert "unit_latent" not in ctx._cache  # no full unit-length copy was made
    (tight_full, _), (tight_sampled, nearest) = tightness(full.cluster_labels_), tightness(sampled.cluster_labels_)
    assert tight_sampled >= tight_full - 0.02
    assert nearest >= 0.95

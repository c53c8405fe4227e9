"""LikelyMislabels recalls flipped labels."""

from __future__ import annotations

import numpy as np
import pytest

from samplescope.analysis.insights import LikelyMislabels
from samplescope.errors import SamplescopeError

from . import make_data, plant_mislabels


def test_flipped_labels_are_recalled():
    d = make_data(n_per_class=400, seed=0)
    flipped = plant_mislabels(d, n=50)
    ctx = d.context()
    finder = LikelyMislabels()
    [insight] = finder.find(ctx)
    listed = set(insight.sample_ids)
    recall = len(listed & set(flipped.tolist())) / len(flipped)
    precision = len(listed & set(flipped.tolist())) / len(listed)
    print(f"mislabel recall {recall:.2f}, precision {precision:.2f} ({len(listed)} listed)")
    assert recall >= 0.8, f"recall {recall:.2f}"
    assert precision >= 0.8, f"precision {precision:.2f}: natural model errors are not mislabels"
    # ranked by score; scores_ aligned with rows; the details name the suggested class
    scores = [insight.details["scores"][str(i)] for i in insight.sample_ids]
    assert scores == sorted(scores, reverse=True)
    rows = np.flatnonzero(np.isin(d.sample_id, flipped))
    assert finder.scores_.shape == (ctx.n_rows,)
    assert (finder.suggested_labels_[rows] == d.truth[rows]).mean() >= 0.95
    first = insight.details["candidates"][0]
    assert (
        f"#{first['sample_id']} labelled c{first['label']} looks like c{first['suggested']}"
        in insight.text
    )


def test_no_candidates_on_clean_data():
    ctx = make_data(n_per_class=200, error_rate=0.0, seed=1).context()
    assert LikelyMislabels().find(ctx) == []


def test_unlabelled_rows_are_never_candidates():
    d = make_data(n_per_class=200, seed=2)
    flipped = plant_mislabels(d, n=20)
    d.labels[np.isin(d.sample_id, flipped)] = -1
    finder = LikelyMislabels()
    insights = finder.find(d.context())
    assert not set(flipped.tolist()) & {i for ins in insights for i in ins.sample_ids}
    assert (finder.scores_[d.labels < 0] == 0).all()


def test_needs_probabilities():
    d = make_data(n_per_class=20)
    df = d.frame().drop(columns=[f"prob_{j}" for j in range(5)])
    from samplescope.analysis.insights import InsightContext

    ctx = InsightContext(samples=df, latent=d.latent)
    with pytest.raises(SamplescopeError, match=r"needs class probabilities.*prob_0"):
        LikelyMislabels().find(ctx)


def _reference_scores(ctx, finder):
    """The confident-learning half and the vote as one (N, C) float64 pass (the finder's
    code before it read the probabilities block by block)."""
    probs = ctx.samples[ctx.prob_columns].to_numpy(np.float64)
    n, c = probs.shape
    lab, rows = ctx.labelled, np.arange(n)
    y = np.where(lab, ctx.labels, 0)
    held = lab & ~ctx.train_mask
    use = held if (np.bincount(ctx.labels[held], minlength=c) >= finder.min_class_count).all() else lab
    t = np.array([probs[use & (ctx.labels == j), j].mean() for j in range(c)])
    others = probs.copy()
    others[rows, y] = -np.inf
    suggested = others.argmax(axis=1)
    reach = np.minimum(1.0, probs[rows, suggested] / t[suggested])
    signal = np.nan_to_num(reach) * (1.0 - probs[rows, y])
    _, nbr = ctx.reference_neighbors(finder.k)
    valid = nbr >= 0
    knn = ((ctx.labels[np.maximum(nbr, 0)] == suggested[:, None]) & valid).sum(1) / np.maximum(valid.sum(1), 1)
    return t, np.where(lab, suggested, -1), np.where(lab, 0.5 * signal + 0.5 * knn, 0.0)


def test_block_by_block_scores_equal_the_whole_table(monkeypatch):
    from samplescope.analysis.insights import mislabels

    d = make_data(n_per_class=300, seed=3)
    plant_mislabels(d, n=40)
    d.labels[::37] = -1  # some unlabelled rows
    ctx = d.context()
    monkeypatch.setattr(mislabels, "_BLOCK", 97)  # many blocks, the last one short
    finder = LikelyMislabels()
    [insight] = finder.find(ctx)
    t, suggested, scores = _reference_scores(ctx, finder)
    np.testing.assert_array_equal(finder.thresholds_, t)
    np.testing.assert_array_equal(finder.suggested_labels_, suggested)
    np.testing.assert_array_equal(finder.scores_, scores)
    first = insight.details["candidates"][0]
    row = int(np.flatnonzero(d.sample_id == first["sample_id"])[0])
    assert first["p_label"] == float(ctx.samples[f"prob_{first['label']}"].to_numpy(np.float64)[row])
    assert "probabilities" not in ctx._cache  # no (N, C) float64 copy was kept

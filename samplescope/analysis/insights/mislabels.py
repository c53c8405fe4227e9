"""Samples whose label is probably wrong.

Two signals, each in [0, 1], are averaged into a score; a sample is a
candidate when the score is at least ``min_score`` (0.75: both signals must be
fairly strong, e.g. 0.9 and 0.6, or one of them certain and the other 0.5).

- **Confident learning** (Northcutt et al., 2021). Per-class thresholds
  ``t_j`` = mean predicted probability of class ``j`` over samples labelled
  ``j`` (over held-out samples when every class has ``min_class_count`` of them,
  else over all). For a sample labelled ``i`` whose most probable other class is
  ``s`` (the suggested label) the signal is ``min(1, p_s / t_s) * (1 - p_i)``:
  1 when ``s`` reaches the confidence the model usually has in its own class
  and the label gets nothing. ``details["n_confident_learning"]`` counts the
  classic off-diagonal flags (the most probable class among those with
  ``p_j >= t_j`` is not ``i``).
- **Neighbour vote.** The fraction of its ``k`` nearest training samples in the
  latent space (cosine; the shared neighbour search of the context) labelled
  ``s``.

Limitations: training samples' probabilities are in-sample, so a network that
has memorised a wrong training label gives it high probability and the first
signal misses it; out-of-sample (cross-validated) probabilities would fix this
at the cost of extra training runs. When the latent space is the classifier's
penultimate layer, a misclassified sample sits among the class it was
predicted as, so the vote then mostly confirms the model rather than adding
independent evidence: on MNIST with a 97.8%-accurate MLP ~500 of its 1,634
errors score >= 0.75, the top of the ranking being genuinely ambiguous or
mislabelled digits.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from samplescope.analysis.insights.base import (
    Insight,
    InsightContext,
    InsightFinder,
    error_severity,
)
from samplescope.analysis.insights.explain import action, population_test
from samplescope.errors import SamplescopeError

__all__ = ["LikelyMislabels"]

logger = logging.getLogger(__name__)

_BLOCK = 262_144  # rows whose (B, C) float64 probabilities are held at a time


class LikelyMislabels(InsightFinder):
    """Rank labelled samples by how likely their label is wrong.

    Attributes (after :meth:`find`)
    -------------------------------
    scores_: (N,) float combined score in [0, 1] (0 for unlabelled rows).
    suggested_labels_: (N,) int most probable class other than the label (-1 unlabelled).
    candidates_: (N,) bool labelled rows with score >= min_score.
    thresholds_: (C,) per-class confident-learning thresholds.
    """

    kinds = ("mislabel",)
    column_prefix = "mislabel"

    def __init__(
        self,
        k: int = 10,
        min_score: float = 0.75,
        min_class_count: int = 10,
        max_candidates: int = 200,
        random_state: int | None = None,
    ) -> None:
        self.k = k
        self.min_score = min_score
        self.min_class_count = min_class_count
        self.max_candidates = max_candidates
        self.random_state = random_state  # the neighbour search is seeded by the context

    def find(self, ctx: InsightContext) -> list[Insight]:
        if not ctx.is_classification:  # a wrong label is a class question; other tasks skip it
            self.scores_ = np.zeros(ctx.n_rows)
            self.suggested_labels_ = np.full(ctx.n_rows, -1)
            self.candidates_ = np.zeros(ctx.n_rows, bool)
            return []
        c = self._n_classes(ctx)
        n = ctx.n_rows
        lab = ctx.labelled
        y = np.where(lab, ctx.labels, 0)

        # (a) confident learning, a block of rows' (B, C) float64 probabilities at a time: no
        # (N, C) copy of the table's float32 columns, and the same values row for row
        self.thresholds_ = self._thresholds(ctx, c)
        cl_flag = np.empty(n, bool)
        suggested = np.empty(n, np.int64)  # the most probable class other than the label
        signal_cl = np.empty(n)
        for start in range(0, n, _BLOCK):
            at = slice(start, min(n, start + _BLOCK))
            probs = ctx.probability_rows(at)
            r, yb = np.arange(len(probs)), y[at]
            above = probs >= self.thresholds_[None, :]
            confident = np.where(above, probs, -1.0).argmax(axis=1)
            cl_flag[at] = lab[at] & above.any(axis=1) & (confident != yb)
            others = probs.copy()
            others[r, yb] = -np.inf
            sug = suggested[at] = others.argmax(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                reach = np.minimum(1.0, probs[r, sug] / self.thresholds_[sug])
            signal_cl[at] = np.nan_to_num(reach) * (1.0 - probs[r, yb])

        # (b) neighbour vote in the latent space
        knn = np.zeros(n)
        if ctx.reference_mask.sum() >= 2:
            _, nbr = ctx.reference_neighbors(self.k)
            for start in range(0, n, _BLOCK):  # bounded (block, k) temporaries, not (N, k) int64
                at = slice(start, min(n, start + _BLOCK))
                block = np.asarray(nbr[at])
                valid = block >= 0
                votes = (ctx.labels[np.maximum(block, 0)] == suggested[at, None]) & valid
                knn[at] = votes.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)

        score = 0.5 * signal_cl + 0.5 * knn
        self.scores_ = np.where(lab, score, 0.0)
        self.suggested_labels_ = np.where(lab, suggested, -1)
        self.candidates_ = lab & (score >= self.min_score)
        cand = np.flatnonzero(self.candidates_)
        if len(cand) == 0:
            return []
        order = cand[np.lexsort((ctx.sample_ids[cand], -self.scores_[cand]))]
        top = order[: self.max_candidates]
        n_knn = int((self.candidates_ & (knn >= 0.5)).sum())
        return [self._insight(ctx, ctx.probability_rows(top), top, len(cand), int(cl_flag.sum()), n_knn, knn)]

    # ------------------------------------------------------------------ helpers

    def _n_classes(self, ctx: InsightContext) -> int:
        """How many ``prob_*`` columns there are; every label must be one of those classes."""
        c = len(ctx.prob_columns)
        if not c:
            raise SamplescopeError(
                "LikelyMislabels needs class probabilities: InsightContext.samples has no "
                "prob_0 .. prob_{C-1} columns."
            )
        too_big = ctx.labels >= c
        if too_big.any():
            row = int(np.flatnonzero(too_big)[0])
            raise SamplescopeError(
                f"sample_id {ctx.sample_ids[row]} has label {ctx.labels[row]} but only "
                f"{c} prob_* columns exist."
            )
        return c

    def _thresholds(self, ctx: InsightContext, c: int) -> np.ndarray:
        lab = ctx.labelled
        held = lab & ~ctx.train_mask
        counts = np.bincount(ctx.labels[held], minlength=c)
        use = held if (counts >= self.min_class_count).all() else lab
        t = np.full(c, np.inf)  # a class nobody carries never becomes a confident label
        for j in range(c):
            members = use & (ctx.labels == j)
            if members.any():
                t[j] = ctx.probability_column(j)[members].mean()
        return t

    def _insight(
        self,
        ctx: InsightContext,
        probs: np.ndarray,
        top: np.ndarray,
        n_cand: int,
        n_cl: int,
        n_knn: int,
        knn: np.ndarray,
    ) -> Insight:
        ids = ctx.sample_ids[top]
        candidates: list[dict[str, Any]] = []
        for i, r in enumerate(top):  # probs: (len(top), C), the listed rows' own
            label, sug = int(ctx.labels[r]), int(self.suggested_labels_[r])
            candidates.append(
                {
                    "sample_id": int(ctx.sample_ids[r]),
                    "subset": str(ctx.subsets[r]),
                    "label": label,
                    "suggested": sug,
                    "score": float(self.scores_[r]),
                    "p_label": float(probs[i, label]),
                    "p_suggested": float(probs[i, sug]),
                    "knn_fraction": float(knn[r]),
                }
            )
        subsets, counts = np.unique(ctx.subsets[self.candidates_], return_counts=True)
        by_subset = {str(s): int(n) for s, n in zip(subsets, counts, strict=True)}
        n_lab = int(ctx.labelled.sum())
        examples = "; ".join(
            f"#{d['sample_id']} labelled {ctx.class_name(d['label'])} looks like "
            f"{ctx.class_name(d['suggested'])} (score {d['score']:.2f})"
            for d in candidates[:3]
        )
        where = ", ".join(f"{n:,} in {s}" for s, n in by_subset.items())
        text = (
            f"{n_cand:,} of {n_lab:,} labelled samples look mislabelled ({where}): the model "
            f"gives another class most of the probability and most of their {self.k} nearest "
            f"training samples carry that class; e.g. {examples}."
        )
        # the common scale: the expected number of wrong labels (each candidate's score)
        accounted = float(self.scores_[self.candidates_].sum())
        severity = error_severity(accounted, int(ctx.errors.sum()))
        details = {
            "n_candidates": n_cand,
            "n_labelled": n_lab,
            "by_subset": by_subset,
            "n_confident_learning": n_cl,
            "n_knn_majority": n_knn,
            "k": self.k,
            "min_score": self.min_score,
            "thresholds": {ctx.class_name(j): float(t) for j, t in enumerate(self.thresholds_)},
            "scores": {str(int(i)): float(self.scores_[r]) for i, r in zip(ids, top, strict=True)},
            "candidates": candidates,
            "accounted_errors": accounted,
            "action": action(
                "relabel",
                f"Relabel these {n_cand:,} samples: check each against its suggested label "
                "(in the sample's details), fix or drop the wrong ones, then retrain.",
                population_test(
                    "likely mislabelled samples", "count", "<=", n_cand,
                    where={"mislabel_score": {"min": self.min_score}},
                ),
            ),
        }
        title = f"{n_cand:,} likely mislabelled samples"
        return Insight("mislabel", severity, ids.tolist(), text, title, details)

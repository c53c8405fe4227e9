"""Samples far from every training sample in the latent space.

A sample's score is its cosine distance to its ``k``-th nearest *training*
sample (itself excluded), from the neighbour search the context shares with the
other finders. The threshold is the ``quantile`` of the training samples' own
scores, so by construction about ``1 - quantile`` of the training set is
flagged (60 of MNIST's 60,000 at 0.999); held-out samples above it are out of
the training distribution. Using the k-th rather than the first neighbour keeps
a pair of odd samples from vouching for each other.
"""

from __future__ import annotations

import logging

import numpy as np

from samplescope.analysis.insights.base import (
    Insight,
    InsightContext,
    InsightFinder,
    error_severity,
    pct,
)
from samplescope.analysis.insights.explain import action, population_test
from samplescope.errors import SamplescopeError

__all__ = ["Outliers"]

logger = logging.getLogger(__name__)

#: what the flagged samples' errors are, in the task's words (an error is the task's own rule)
WRONG = {"classification": "are misclassified", "regression": "have an |error| above the threshold",
         "multilabel": "are not an exact match"}  # fmt: skip


class Outliers(InsightFinder):
    """Flag samples whose k-th nearest training neighbour is unusually far.

    Attributes (after :meth:`find`)
    -------------------------------
    scores_: (N,) cosine distance to the k-th nearest training sample.
    threshold_: the score above which a sample is flagged.
    outliers_: (N,) bool flagged rows.
    """

    kinds = ("outlier",)
    column_prefix = "outlier"

    def __init__(
        self,
        k: int = 10,
        quantile: float = 0.999,
        max_sample_ids: int = 200,
        random_state: int | None = None,
    ) -> None:
        self.k = k
        self.quantile = quantile
        self.max_sample_ids = max_sample_ids
        self.random_state = random_state  # the neighbour search is seeded by the context

    def find(self, ctx: InsightContext) -> list[Insight]:
        if not 0.0 < self.quantile < 1.0:
            raise SamplescopeError(f"Outliers(quantile={self.quantile!r}) must be in (0, 1).")
        if self.k < 1:
            raise SamplescopeError(f"Outliers(k={self.k!r}) must be >= 1.")
        ref = ctx.reference_mask
        if ref.sum() < 2:
            self.scores_ = np.zeros(ctx.n_rows)
            self.outliers_ = np.zeros(ctx.n_rows, bool)
            self.threshold_ = float("inf")
            return []
        dist, _ = ctx.reference_neighbors(self.k)
        finite = np.where(np.isfinite(dist), dist, -np.inf)
        scores = finite.max(axis=1)  # the k-th distance, or the farthest one found
        self.scores_ = scores.astype(np.float64)
        self.threshold_ = float(np.quantile(self.scores_[ref], self.quantile))
        self.outliers_ = self.scores_ > self.threshold_
        flagged = np.flatnonzero(self.outliers_)
        if len(flagged) == 0:
            return []
        order = flagged[np.lexsort((ctx.sample_ids[flagged], -self.scores_[flagged]))]
        lab, err = ctx.labelled, ctx.errors
        n_lab_out = int(lab[flagged].sum())
        err_out = float(err[flagged].sum() / n_lab_out) if n_lab_out else 0.0
        err_pop = float(err.sum() / max(lab.sum(), 1))
        subsets, counts = np.unique(ctx.subsets[flagged], return_counts=True)
        by_subset = {str(s): int(n) for s, n in zip(subsets, counts, strict=True)}
        where = ", ".join(f"{n:,} in {s}" for s, n in by_subset.items())
        q = f"{self.quantile * 100:g}"
        wrong = WRONG.get(ctx.task, WRONG["classification"])
        errors_part = (
            f"{pct(err_out)} of them {wrong} vs {pct(err_pop)} overall"
            if n_lab_out
            else "none of them is labelled"
        )
        text = (
            f"{len(flagged):,} samples ({where}) lie far from every training sample in latent "
            f"space (cosine distance to the {_ordinal(self.k)} nearest training sample above "
            f"{self.threshold_:.3g}, the training {q}th percentile); {errors_part}."
        )
        # the quantile flags (1 - quantile) of the samples by construction; on the common
        # scale only the flagged samples' errors above the overall rate count, and only as far
        # as there are more flagged samples than the quantile flags anyway
        expected = (1 - self.quantile) * ctx.n_rows
        excess_share = max(0.0, len(flagged) - expected) / max(len(flagged), 1)
        accounted = max(0.0, float(err[flagged].sum()) - n_lab_out * err_pop) * excess_share
        severity = error_severity(accounted, int(err.sum()))
        top = order[: self.max_sample_ids]
        details = {
            "n_outliers": len(flagged),
            "n_expected": expected,
            "by_subset": by_subset,
            "k": self.k,
            "quantile": self.quantile,
            "threshold": self.threshold_,
            "error_rate": err_out,
            "overall_error_rate": err_pop,
            "scores": {str(int(ctx.sample_ids[r])): float(self.scores_[r]) for r in top},
            "accounted_errors": accounted,
            "action": action(
                "watch",
                "Watch these inputs: they lie outside the training distribution. Collect "
                "training samples like them if they are real inputs, else filter them out.",
                population_test(
                    "samples outside the training distribution", "count", "<=", len(flagged),
                    where={"outlier_score": {"min": round(self.threshold_, 6)}},
                ),
            ),
        }
        title = f"{len(flagged):,} latent-space outliers"
        return [Insight("outlier", severity, ctx.sample_ids[top].tolist(), text, title, details)]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"

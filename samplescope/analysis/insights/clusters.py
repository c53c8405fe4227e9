"""Regions of the latent space where the model fails more often than elsewhere.

The latent vectors are scaled to unit length and clustered with spherical
k-means (faiss; ~20x faster than scikit-learn's MiniBatchKMeans at 70,000 x 128
and just as seedable). Many small clusters (about 700 samples each on MNIST,
``n_clusters="auto"``) let a small failure mode dominate its own cluster rather
than being diluted in a class-sized one.

A cluster is reported when, over its labelled samples,

- its errors are at least ``min_ratio`` times the errors its samples' classes
  predict (E: the sum of each sample's class error rate), it has at least
  ``min_errors`` errors, and a one-sided binomial test of them against E gives
  p < ``alpha / n_clusters`` (Bonferroni over the clusters), or
- its mean loss is at least ``min_ratio`` times the overall mean loss with a
  one-sided t-test p < ``alpha / n_clusters``.

Each is described by its main labels, its most frequent (label, prediction)
confusion (classification) and the metadata columns that best separate its failing samples (all its samples when fewer than ``min_errors`` fail) from
**the other samples of its classes** (:func:`.explain.describe_slice`; at most two
with |effect| >= ``min_effect``); it says what to do (collect or augment samples
like the described slice) and carries a population test for it.

``overfitting`` insights compare a cluster's held-out mean loss with its
training mean loss: reported when the ratio is at least ``overfit_ratio`` and
twice the ratio over all samples (the model overfits *here* more than
elsewhere), the gap exceeds the overall held-out mean loss, both subsets have
``min_size`` samples in the cluster and a Welch t-test gives p < alpha / n_clusters.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from samplescope.analysis.insights.base import (
    Insight,
    InsightContext,
    InsightFinder,
    error_severity,
    one_sided_p,
    ordered_ids,
    pct,
    seed_for,
)
from samplescope.analysis.insights.explain import (
    action,
    class_population,
    describe_slice,
    population_test,
)
from samplescope.errors import SamplescopeError

__all__ = ["LowPerformanceClusters", "describe_metadata"]

logger = logging.getLogger(__name__)


class LowPerformanceClusters(InsightFinder):
    """Find latent clusters with high error rate or loss, and overfit clusters.

    Attributes (after :meth:`find`)
    -------------------------------
    cluster_labels_: (N,) int cluster of every row, 0 = largest cluster.
    n_clusters_: the number of clusters used.
    cluster_table_: one row per cluster: n, n_labelled, errors, error_rate, mean_loss, p_value.
    """

    kinds = ("low_performance_cluster", "overfitting")
    column_prefix = "cluster"

    def __init__(
        self,
        n_clusters: int | Literal["auto"] = "auto",
        min_ratio: float = 2.0,
        min_size: int = 20,
        min_errors: int = 5,
        alpha: float = 0.01,
        min_effect: float = 0.5,
        overfit_ratio: float = 3.0,
        max_insights: int = 10,
        max_sample_ids: int = 500,
        random_state: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.min_ratio = min_ratio
        self.min_size = min_size
        self.min_errors = min_errors
        self.alpha = alpha
        self.min_effect = min_effect
        self.overfit_ratio = overfit_ratio
        self.max_insights = max_insights
        self.max_sample_ids = max_sample_ids
        self.random_state = random_state

    # ------------------------------------------------------------------ verb

    def find(self, ctx: InsightContext) -> list[Insight]:
        k = self._resolve_n_clusters(ctx)
        self.cluster_labels_ = _spherical_kmeans(ctx, k, seed_for(self.random_state, ctx))
        self.n_clusters_ = k
        table = self._cluster_table(ctx)
        self.cluster_table_ = table
        insights = self._low_performance(ctx, table)[: self.max_insights]
        insights += self._overfitting(ctx)[: self.max_insights]
        return insights

    # ------------------------------------------------------------------ clustering

    def _resolve_n_clusters(self, ctx: InsightContext) -> int:
        n = ctx.n_rows
        if self.n_clusters == "auto":
            # ~700 samples a cluster, at least two per class, at most 100
            k = int(np.clip(n // 700, max(8, 2 * len(ctx.class_names)), 100))
            k = min(k, max(1, n // max(1, self.min_size)))
        elif isinstance(self.n_clusters, (int, np.integer)) and self.n_clusters >= 1:
            k = int(self.n_clusters)
        else:
            raise SamplescopeError(
                f"LowPerformanceClusters(n_clusters={self.n_clusters!r}): "
                "use 'auto' or an int >= 1."
            )
        if k > n:
            raise SamplescopeError(
                f"LowPerformanceClusters(n_clusters={k}) exceeds the {n} samples."
            )
        return k

    def _cluster_table(self, ctx: InsightContext) -> pd.DataFrame:
        k, labels, lab = self.n_clusters_, self.cluster_labels_, ctx.labelled
        n = np.bincount(labels, minlength=k)
        n_lab = np.bincount(labels[lab], minlength=k)
        errors = np.bincount(labels[ctx.errors], minlength=k)
        expected = np.bincount(labels[lab], weights=ctx.expected_errors[lab], minlength=k)
        loss_sum = np.bincount(labels[lab], weights=ctx.losses[lab], minlength=k)
        p0 = ctx.errors.sum() / max(1, lab.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(n_lab > 0, errors / np.maximum(n_lab, 1), np.nan)
            mean_loss = np.where(n_lab > 0, loss_sum / np.maximum(n_lab, 1), np.nan)
        # errors against what the cluster's classes predict (not against the overall rate)
        base = np.clip(expected / np.maximum(n_lab, 1), 1e-12, 1.0)
        p_value = np.where(
            (n_lab > 0) & (p0 > 0), stats.binom.sf(errors - 1, np.maximum(n_lab, 1), base), 1.0
        )
        return pd.DataFrame(
            {
                "cluster": np.arange(k),
                "n": n,
                "n_labelled": n_lab,
                "errors": errors,
                "expected_errors": expected,
                "error_rate": rate,
                "loss_sum": loss_sum,
                "mean_loss": mean_loss,
                "p_value": p_value,
            }
        )

    # ------------------------------------------------------------------ low performance

    def _low_performance(self, ctx: InsightContext, table: pd.DataFrame) -> list[Insight]:
        lab = ctx.labelled
        n_lab_all = int(lab.sum())
        if n_lab_all == 0:
            return []
        total_errors = int(ctx.errors.sum())
        p0 = total_errors / n_lab_all
        total_loss = float(ctx.losses[lab].sum())
        loss0 = total_loss / n_lab_all
        cutoff = self.alpha / self.n_clusters_
        insights = []
        for row in table.itertuples(index=False):
            if row.n_labelled < self.min_size:
                continue
            by_errors = (
                p0 > 0
                and row.errors >= self.min_errors
                and row.errors >= self.min_ratio * row.expected_errors
                and row.p_value < cutoff
            )
            members = np.flatnonzero((self.cluster_labels_ == row.cluster) & lab)
            by_loss = False
            loss_p = 1.0
            if loss0 > 0 and row.mean_loss >= self.min_ratio * loss0:
                loss_p = one_sided_p(
                    stats.ttest_1samp, ctx.losses[members], loss0, alternative="greater"
                )
                by_loss = loss_p < cutoff
            if not (by_errors or by_loss):
                continue
            # the common scale: the errors above what the cluster's classes predict
            severity = error_severity(max(0.0, row.errors - row.expected_errors), total_errors)
            insights.append(self._describe(ctx, row, p0, loss0, by_errors, severity, loss_p))
        insights.sort(key=lambda i: -i.severity)
        return insights

    def _describe(
        self,
        ctx: InsightContext,
        row: Any,
        p0: float,
        loss0: float,
        by_errors: bool,
        severity: float,
        loss_p: float,
    ) -> Insight:
        c = int(row.cluster)
        mask = self.cluster_labels_ == c
        composition, label_shares = _composition(ctx, mask)
        # what sets the cluster's *failing* samples apart from the other samples of their
        # classes (the failing 4s against the 4s that succeed); all its samples when few fail
        failing = mask & ctx.errors
        described = failing if failing.sum() >= self.min_errors else mask
        meta = describe_slice(ctx, described, min_effect=self.min_effect)
        confusion = _top_confusion(ctx, mask) if ctx.is_classification else None
        expected_rate = row.expected_errors / max(row.n_labelled, 1)
        if by_errors:
            text = (
                f"Cluster {c} ({row.n:,} samples, {composition}) has {pct(row.error_rate)} errors "
                f"vs {pct(expected_rate)} expected for its classes"
            )
        else:
            text = (
                f"Cluster {c} ({row.n:,} samples, {composition}) has mean loss "
                f"{row.mean_loss:.3g} vs {loss0:.3g} overall ({pct(row.error_rate)} errors "
                f"vs {pct(p0)})"
            )
        if meta:
            who = "failing samples" if described is failing else "samples"
            text += (
                f"; against {meta[0]['reference']}, its {who} have "
                + " and ".join(m["phrase"] for m in meta)
            )
        else:
            text += "; no metadata column sets it apart from the other samples of its classes"
        if confusion:
            text += (
                f"; {confusion['label_name']} is confused with {confusion['prediction_name']} "
                f"({confusion['count']} of {row.errors} errors)"
            )
        text += "."
        lift = row.errors / max(row.expected_errors, 1e-12)
        title = f"Cluster {c}: {pct(row.error_rate)} errors ({lift:.1f}x)"
        if not by_errors:
            title = f"Cluster {c}: mean loss {row.mean_loss / max(loss0, 1e-12):.1f}x overall"
        details = {
            "cluster": c,
            "n_samples": int(row.n),
            "n_labelled": int(row.n_labelled),
            "errors": int(row.errors),
            "error_rate": float(row.error_rate),
            "overall_error_rate": p0,
            "error_ratio": float(row.error_rate / p0) if p0 > 0 else None,
            "mean_loss": float(row.mean_loss),
            "overall_mean_loss": loss0,
            "expected_errors": float(row.expected_errors),
            "accounted_errors": float(max(0.0, row.errors - row.expected_errors)),
            "error_p_value": float(row.p_value),
            "loss_p_value": loss_p,
            "labels": label_shares,
            "metadata": [{k: v for k, v in m.items() if k != "phrase"} for m in meta],
            "confusion": confusion,
            "action": _cluster_action(ctx, c, described, row, meta),
        }
        ids = ordered_ids(ctx, np.flatnonzero(mask), self.max_sample_ids)
        return Insight("low_performance_cluster", severity, ids, text, title, details)

    # ------------------------------------------------------------------ overfitting

    def _overfitting(self, ctx: InsightContext) -> list[Insight]:
        lab = ctx.labelled
        train = lab & ctx.train_mask
        held = lab & ~ctx.train_mask
        if train.sum() < self.min_size or held.sum() < self.min_size:
            return []
        loss = ctx.losses
        lt0, lh0 = float(loss[train].mean()), float(loss[held].mean())
        tiny = 1e-12
        gap0 = lh0 / max(lt0, tiny)
        cutoff = self.alpha / self.n_clusters_
        total_held_loss = float(loss[held].sum())
        insights = []
        for c in range(self.n_clusters_):
            in_c = self.cluster_labels_ == c
            t_rows, h_rows = np.flatnonzero(in_c & train), np.flatnonzero(in_c & held)
            if len(t_rows) < self.min_size or len(h_rows) < self.min_size:
                continue
            lt, lh = float(loss[t_rows].mean()), float(loss[h_rows].mean())
            ratio = lh / max(lt, tiny)
            if ratio < max(self.overfit_ratio, 2 * gap0) or lh - lt < lh0:
                continue
            p = one_sided_p(
                stats.ttest_ind, loss[h_rows], loss[t_rows], equal_var=False, alternative="greater"
            )
            if not p < cutoff:
                continue
            composition, label_shares = _composition(ctx, in_c)
            err_t = float(ctx.errors[t_rows].mean())
            err_h = float(ctx.errors[h_rows].mean())
            # the common scale: held-out errors above the cluster's own training error rate
            held_errors = int(ctx.errors[h_rows].sum())
            accounted = max(0.0, held_errors - len(h_rows) * err_t)
            severity = error_severity(accounted, int(ctx.errors[held].sum()))
            text = (
                f"Cluster {c} ({int(in_c.sum()):,} samples, {composition}) looks overfit: "
                "mean loss "
                f"{lh:.3g} on held-out samples vs {lt:.3g} on training ({ratio:.1f}x, against "
                f"{gap0:.1f}x overall); errors {pct(err_h)} vs {pct(err_t)}."
            )
            details = {
                "cluster": c,
                "n_train": len(t_rows),
                "n_held_out": len(h_rows),
                "n_samples": len(h_rows),  # sample_ids hold at most max_sample_ids of them
                "train_mean_loss": lt,
                "held_out_mean_loss": lh,
                "ratio": ratio,
                "overall_ratio": gap0,
                "train_error_rate": err_t,
                "held_out_error_rate": err_h,
                "p_value": p,
                "labels": label_shares,
                "accounted_errors": accounted,
                "total_held_loss": total_held_loss,
                "action": action(
                    "watch",
                    f"Watch the held-out loss of cluster {c}: regularise or augment the training "
                    "samples of this region (it is memorised, not learnt).",
                    population_test(
                        f"cluster {c} held-out mean loss", "mean_loss", "<=",
                        float(np.ceil(lh * 1e4) / 1e4), subset=str(ctx.subsets[h_rows[0]]), cluster=c,
                    ),
                ),
            }
            ids = ordered_ids(ctx, h_rows, self.max_sample_ids)
            title = f"Cluster {c} overfit: held-out loss {ratio:.1f}x training"
            insights.append(Insight("overfitting", severity, ids, text, title, details))
        insights.sort(key=lambda i: -i.severity)
        return insights


# --------------------------------------------------------------------------- helpers


def _cluster_action(
    ctx: InsightContext, c: int, mask: np.ndarray, row: Any, meta: list[dict[str, Any]]
) -> dict[str, Any]:
    """Collect or augment samples like the described slice, with a test on that slice
    (the slice outlives the cluster's id, which the next analysis renumbers)."""
    classes = class_population(ctx, mask)
    who = " and ".join(f"{c}s" for c in classes) if classes else "samples"
    rate = float(np.ceil(row.error_rate * 1e4) / 1e4)
    described = [m for m in meta if m.get("where")]
    if described:
        m = described[0]
        slice_name = f"{who} with {m['slice']}"
        test = population_test(
            f"{slice_name} error rate", "error_rate", "<=", rate, classes=classes, where=m["where"]
        )
        return action(
            "collect",
            f"Collect or augment more {slice_name}: that sets cluster {c} apart from "
            f"{m['reference']}, and the model fails there.",
            test,
        )
    return action(
        "collect",
        f"Look at cluster {c}'s {who}: no metadata column describes them; add one that "
        "could (how they were written, scanned or sourced), then collect more like them.",
        population_test(f"cluster {c} error rate", "error_rate", "<=", rate, cluster=c),
    )


#: up to this many rows k-means sees every unit row (and subsamples them itself); above it
#: a seeded sample of ``max_points_per_centroid`` rows per cluster is normalised instead of
#: a full unit-length copy of the latent (2.4 GiB at 10M x 64)
_KMEANS_FULL_MAX = 262_144
_KMEANS_POINTS = 256  # rows per centroid k-means trains on
_ASSIGN_BLOCK = 262_144  # rows normalised and assigned at a time


def _spherical_kmeans(ctx: InsightContext, k: int, seed: int) -> np.ndarray:
    """(N,) cluster of each row's unit-length latent, relabelled so 0 is the largest cluster."""
    import faiss

    n, dim = ctx.latent.shape
    if k == 1:
        return np.zeros(n, np.int64)
    km = faiss.Kmeans(
        dim,
        k,
        niter=20,
        seed=int(seed),
        spherical=True,
        max_points_per_centroid=_KMEANS_POINTS,
        min_points_per_centroid=1,
    )
    if n <= _KMEANS_FULL_MAX:
        km.train(ctx.unit_rows(slice(None)))
    else:
        rng = np.random.default_rng(seed)
        km.train(ctx.unit_rows(np.sort(rng.choice(n, k * _KMEANS_POINTS, replace=False))))
    assign = np.empty(n, np.int64)
    for start in range(0, n, _ASSIGN_BLOCK):
        _, found = km.index.search(ctx.unit_rows(slice(start, start + _ASSIGN_BLOCK)), 1)
        assign[start : start + len(found)] = found[:, 0]
    sizes = np.bincount(assign, minlength=k)
    order = np.lexsort((np.arange(k), -sizes))  # largest first, ties by old id
    relabel = np.empty(k, np.int64)
    relabel[order] = np.arange(k)
    return relabel[assign]


def _composition(ctx: InsightContext, mask: np.ndarray) -> tuple[str, dict[str, float]]:
    """('mostly 4 and 9', {'4': 0.55, '9': 0.38}) from the labels inside ``mask``."""
    labels = ctx.labels[mask & ctx.labelled]
    if len(labels) == 0:
        return "unlabelled", {}
    values, counts = np.unique(labels, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    shares = {ctx.class_name(values[i]): float(counts[i] / len(labels)) for i in order[:3]}
    top = [(ctx.class_name(values[i]), counts[i] / len(labels)) for i in order[:2]]
    if top[0][1] >= 0.8 or len(top) == 1:
        return f"mostly {top[0][0]}", shares
    if top[0][1] + top[1][1] >= 0.6:
        return f"mostly {top[0][0]} and {top[1][0]}", shares
    return "mixed labels", shares


def _top_confusion(ctx: InsightContext, mask: np.ndarray) -> dict[str, Any] | None:
    err = mask & ctx.errors
    if not err.any():
        return None
    pairs = np.stack([ctx.labels[err], ctx.predictions[err]], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    best = int(np.argmax(counts))
    label, pred = (int(v) for v in uniq[best])
    return {
        "label": label,
        "prediction": pred,
        "count": int(counts[best]),
        "label_name": ctx.class_name(label),
        "prediction_name": ctx.class_name(pred),
    }


def describe_metadata(
    ctx: InsightContext, mask: np.ndarray, min_effect: float = 0.5, top: int = 2
) -> list[dict[str, Any]]:
    """Deprecated name: :func:`samplescope.analysis.insights.explain.describe_slice`."""
    return describe_slice(ctx, mask, min_effect=min_effect, top=top)


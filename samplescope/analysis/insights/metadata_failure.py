"""Metadata slices where the model's errors pile up, judged against the samples' classes.

Every explaining metadata column (the label's own functions are left out, see
:mod:`.kinds`) is cut into slices by its kind:

- ``number``: its tails, ``column >= q`` and ``column <= q`` at the 70th, 80th and 90th
  (10th, 20th, 30th) percentiles;
- ``ordinal``: ``column >= t`` and ``column <= t`` for each of its values;
- ``category`` / ``class``: ``column = v`` for each value (a class by its name).

Each slice is taken over all samples and, for classification, within each class
(the percentiles then those of that class). A slice's errors O are compared with the
errors E its samples' classes predict (the sum of each sample's class error rate), so
"thin 1s" is news only when thin 1s fail more than 1s do, and a slice that merely
gathers a hard class is not. A slice is reported when it has ``min_group_size``
samples, ``min_errors`` errors, O >= ``min_ratio`` E and a one-sided binomial test of O
against E gives p < ``alpha`` / (number of slices tried over all columns).

One insight per column: its slice accounting for the most errors (O - E), the
narrower one-class slice when it accounts for at least ``narrow_share`` of the
broader one's. Slices that share more than ``max_overlap`` of each other's errors (or
whose samples' Jaccard overlap exceeds it) tell one story: the less severe is named in
the more severe one's sentence. Severity on the common scale: ``saturate((O - E) / all errors, 0.1)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from samplescope.analysis.insights.base import (
    Insight,
    InsightContext,
    InsightFinder,
    error_severity,
    ordered_ids,
    pct,
)
from samplescope.analysis.insights.explain import action, population_test

__all__ = ["MetadataPredictsFailure"]

logger = logging.getLogger(__name__)

_TAILS = (0.1, 0.2, 0.3)


@dataclass
class _Slice:
    column: str
    where: dict[str, Any]  # the population test's condition
    what: str  # "slant <= -0.25"
    rows: np.ndarray  # row positions
    class_index: int | None  # None: every class
    note: str  # "the lowest 30% of 4s"


class MetadataPredictsFailure(InsightFinder):
    """Report metadata slices whose samples fail more than their classes predict.

    Attributes (after :meth:`find`)
    -------------------------------
    column_table_: one row per explaining column: column, kind, best slice, errors,
        expected errors, p-value (whether reported or not).
    """

    kinds = ("metadata_failure",)
    column_prefix = "metadata"

    def __init__(
        self,
        min_ratio: float = 2.0,
        min_errors: int = 5,
        min_group_size: int = 30,
        alpha: float = 0.01,
        narrow_share: float = 0.7,
        max_overlap: float = 0.5,
        max_sample_ids: int = 200,
        random_state: int | None = None,
    ) -> None:
        self.min_ratio = min_ratio
        self.min_errors = min_errors
        self.min_group_size = min_group_size
        self.alpha = alpha
        self.narrow_share = narrow_share
        self.max_overlap = max_overlap
        self.max_sample_ids = max_sample_ids
        self.random_state = random_state  # deterministic: nothing random here

    def find(self, ctx: InsightContext) -> list[Insight]:
        columns = ["column", "kind", "slice", "errors", "expected_errors", "p_value"]
        self.column_table_ = pd.DataFrame(columns=columns)
        lab = ctx.labelled
        self._members: dict[int, np.ndarray] = {}
        if not lab.any() or not ctx.explaining_columns or not ctx.errors.any():
            return []
        per_column = {col: self._slices(ctx, col) for col in ctx.explaining_columns}
        n_tests = max(1, sum(len(s) for s in per_column.values()))
        cutoff = self.alpha / n_tests
        err, expected = ctx.errors, ctx.expected_errors
        total_errors = int(err[lab].sum())
        insights, table = [], []
        for col, slices in per_column.items():
            scored = []
            for sl in slices:
                n = len(sl.rows)
                o = int(err[sl.rows].sum())
                e = float(expected[sl.rows].sum())
                if n < self.min_group_size or o < self.min_errors or o < self.min_ratio * e:
                    continue
                p = float(stats.binom.sf(o - 1, n, min(max(e / n, 1e-12), 1.0)))
                scored.append((sl, n, o, e, p))
            passed = [s for s in scored if s[4] < cutoff]
            best = self._choose(passed) if passed else None
            if best is None and scored:
                shown = min(scored, key=lambda s: s[4])
                table.append([col, ctx.kind_of(col), shown[0].what, shown[2], shown[3], shown[4]])
            if best is None:
                continue
            sl, n, o, e, p = best
            table.append([col, ctx.kind_of(col), sl.what, o, e, p])
            insights.append(self._insight(ctx, sl, n, o, e, p, total_errors, len(passed)))
            self._members[id(insights[-1])] = sl.rows
        self.column_table_ = pd.DataFrame(table, columns=columns)
        insights.sort(key=lambda i: -i.severity)
        return _fold_overlapping(insights, self._members, ctx.errors, self.max_overlap)

    # ------------------------------------------------------------------ slices

    def _slices(self, ctx: InsightContext, col: str) -> list[_Slice]:
        rows = np.flatnonzero(ctx.labelled)
        values = ctx.samples[col].to_numpy()[rows]
        kind = ctx.kind_of(col)
        groups: list[tuple[int | None, np.ndarray]] = [(None, np.ones(len(rows), bool))]
        if ctx.is_classification:
            y = ctx.labels[rows]
            groups += [(int(j), y == j) for j in np.unique(y)]
        out = []
        for j, in_group in groups:
            who = "samples" if j is None else f"{ctx.class_name(j)}s"
            if kind == "number":
                x = values.astype(np.float64)
                ok = in_group & np.isfinite(x)
                if ok.sum() < self.min_group_size:
                    continue
                for t in _TAILS:
                    hi, lo = np.quantile(x[ok], [1 - t, t])
                    share = f"{round(t * 100)}%"
                    out.append(_Slice(col, {col: {"min": float(hi)}}, f"{col} >= {hi:.3g}",
                                      rows[ok & (x >= hi)], j, f"the highest {share} of {who}"))
                    out.append(_Slice(col, {col: {"max": float(lo)}}, f"{col} <= {lo:.3g}",
                                      rows[ok & (x <= lo)], j, f"the lowest {share} of {who}"))
            elif kind == "ordinal":
                x = values.astype(np.float64)
                levels = np.unique(x[in_group & np.isfinite(x)])
                for t in levels[1:]:
                    name = ctx.value_name(col, int(t) if float(t).is_integer() else t)
                    out.append(_Slice(col, {col: {"min": float(t)}}, f"{col} >= {name}",
                                      rows[in_group & (x >= t)], j, ""))
                for t in levels[:-1]:
                    name = ctx.value_name(col, int(t) if float(t).is_integer() else t)
                    out.append(_Slice(col, {col: {"max": float(t)}}, f"{col} <= {name}",
                                      rows[in_group & (x <= t)], j, ""))
            else:
                text = values.astype(str)
                cats = np.unique(text[in_group])
                if len(cats) < 2 or len(cats) > 100:
                    continue
                for cat in cats:
                    hit = in_group & (text == cat)
                    raw = values[np.flatnonzero(hit)[0]]
                    value = raw.item() if isinstance(raw, np.generic) else raw
                    what = f"{col} = {ctx.value_name(col, raw)}"
                    out.append(_Slice(col, {col: value}, what, rows[hit], j, ""))
        return out

    def _choose(self, passed: list[tuple]) -> tuple:
        """The slice accounting for the most errors; a one-class slice when it accounts
        for at least ``narrow_share`` of the best slice over all classes."""
        best = max(passed, key=lambda s: (s[2] - s[3], s[2] / max(s[3], 1e-12)))
        if best[0].class_index is None:
            narrow = [s for s in passed if s[0].class_index is not None]
            if narrow:
                n_best = max(narrow, key=lambda s: (s[2] - s[3], s[2] / max(s[3], 1e-12)))
                if n_best[2] - n_best[3] >= self.narrow_share * (best[2] - best[3]):
                    return n_best
        return best

    # ------------------------------------------------------------------ insight

    def _insight(self, ctx: InsightContext, sl: _Slice, n: int, o: int, e: float, p: float,
                 total_errors: int, n_passed: int) -> Insight:
        rate, e_rate = o / n, e / n
        who = "Samples" if sl.class_index is None else f"{ctx.class_name(sl.class_index)}s"
        loss_in = float(ctx.losses[sl.rows].mean())
        text = (
            f"{who} with {sl.what} ({sl.note + '; ' if sl.note else ''}{n:,} samples) have {pct(rate)} errors vs "
            f"{pct(e_rate)} expected for their class{'es' if sl.class_index is None else ''} "
            f"({o:,} errors vs {e:.1f}; mean loss {loss_in:.3g})."
        )
        slice_name = f"{who.lower() if sl.class_index is None else who} with {sl.what}"
        classes = [] if sl.class_index is None else [ctx.class_name(sl.class_index)]
        test = population_test(f"{slice_name} error rate", "error_rate", "<=",
                               float(np.ceil(rate * 1e4) / 1e4), classes=classes, where=sl.where)
        accounted = max(0.0, o - e)
        details = {
            "column": sl.column,
            "kind": ctx.kind_of(sl.column),
            "slice": sl.what,
            "where": sl.where,
            "classes": classes,
            "value": _value_of(sl.where[sl.column]),
            "n": n,
            "n_samples": n,
            "errors": o,
            "expected_errors": e,
            "accounted_errors": accounted,
            "error_rate": rate,
            "expected_error_rate": e_rate,
            "ratio": o / max(e, 1e-12),
            "mean_loss": loss_in,
            "p_value": p,
            "n_slices_passed": n_passed,
            "action": action(
                "collect",
                f"Collect or augment more {slice_name}; the model fails on them "
                f"{o / max(e, 1e-12):.1f}x as often as on their class{'es' if not classes else ''}.",
                test,
            ),
        }
        title = f"{slice_name}: {pct(rate)} errors ({o / max(e, 1e-12):.1f}x expected)"
        ids = ordered_ids(ctx, sl.rows, self.max_sample_ids)
        severity = error_severity(accounted, total_errors)
        return Insight("metadata_failure", severity, ids, text, title, details)


def _fold_overlapping(found: list[Insight], members: dict[int, np.ndarray], errors: np.ndarray,
                      max_overlap: float) -> list[Insight]:
    """Most severe first; a slice that explains the same errors as a kept one (they share
    more than ``max_overlap`` of the errors of each) or the same samples (Jaccard above
    ``max_overlap``) is the same story: named in the kept one's sentence. A small slice
    inside a broad one keeps its own card: it explains only part of the broad one's errors."""
    kept: list[tuple[Insight, np.ndarray, list[str]]] = []
    for insight in found:
        rows = members[id(insight)]
        wrong = rows[errors[rows]]
        for _, other_rows, also in kept:
            shared = len(np.intersect1d(rows, other_rows, assume_unique=True))
            other_wrong = other_rows[errors[other_rows]]
            same_errors = len(np.intersect1d(wrong, other_wrong, assume_unique=True))
            if (same_errors > max_overlap * max(len(wrong), len(other_wrong))
                    or shared > max_overlap * (len(rows) + len(other_rows) - shared)):
                also.append(insight.details["slice"])
                break
        else:
            kept.append((insight, rows, []))
    out = []
    for insight, _, also in kept:
        if also:
            text = f"{insight.text[:-1]}; the same samples also stand out by {', '.join(also)}."
            details = {**insight.details, "also": also}
            insight = Insight(insight.kind, insight.severity, insight.sample_ids, text, insight.title, details)
        out.append(insight)
    return out


def _value_of(cond: Any) -> Any:
    if isinstance(cond, dict):
        return (f">= {cond['min']:.6g}" if "min" in cond else f"<= {cond['max']:.6g}")
    return cond

"""Metadata columns along which the model's errors pile up.

Numeric columns are cut into ``n_bins`` quantile bins (deciles by default);
the error rate and mean loss of each bin are computed over labelled samples and
a column is reported when the trend is strong and large:

- Spearman rho between bin index and mean loss has ``|rho| >= min_rho``;
- the worst end bin's error rate is at least ``min_ratio`` times the best end
  bin's (rates smoothed by half an error so an empty bin is not a zero);
- the worst end bin has ``min_errors`` errors and a one-sided binomial test of
  it against the best end bin's rate gives p < alpha / (number of columns).

Boolean, text and low-cardinality numeric columns (at most ``n_bins`` distinct
values) are treated as categories: a value is reported when its samples' error
rate is ``min_ratio`` times that of the other samples, with ``min_errors``
errors, ``min_group_size`` samples and a binomial p < alpha / (number of groups).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from samplescope.analysis.insights.base import (
    Insight,
    InsightContext,
    InsightFinder,
    one_sided_p,
    ordered_ids,
    pct,
    saturate,
)

__all__ = ["MetadataPredictsFailure"]

logger = logging.getLogger(__name__)

_BIN_NAMES = {4: "quartile", 5: "quintile", 10: "decile", 20: "ventile", 100: "percentile"}


class MetadataPredictsFailure(InsightFinder):
    """Report metadata columns whose values predict the model's errors.

    Attributes (after :meth:`find`)
    -------------------------------
    column_table_: one row per examined numeric column: column, rho, worst and best rates.
    """

    kinds = ("metadata_failure",)
    column_prefix = "metadata"

    def __init__(
        self,
        n_bins: int = 10,
        min_rho: float = 0.8,
        min_ratio: float = 2.0,
        min_errors: int = 5,
        min_group_size: int = 30,
        alpha: float = 0.01,
        max_sample_ids: int = 200,
        random_state: int | None = None,
    ) -> None:
        self.n_bins = n_bins
        self.min_rho = min_rho
        self.min_ratio = min_ratio
        self.min_errors = min_errors
        self.min_group_size = min_group_size
        self.alpha = alpha
        self.max_sample_ids = max_sample_ids
        self.random_state = random_state  # deterministic: nothing random here

    def find(self, ctx: InsightContext) -> list[Insight]:
        lab = ctx.labelled
        rows = np.flatnonzero(lab)
        self.column_table_ = pd.DataFrame(columns=["column", "rho", "worst_rate", "best_rate"])
        if len(rows) == 0 or not ctx.metadata_columns:
            return []
        n_cols = len(ctx.metadata_columns)
        insights: list[Insight] = []
        table = []
        for col in ctx.metadata_columns:
            series = ctx.samples[col]
            numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(
                series
            )
            if numeric and series.iloc[rows].nunique() > self.n_bins:
                found, info = self._numeric(ctx, col, rows, n_cols)
                table.append(info)
                insights.extend(found)
            else:
                insights.extend(self._categorical(ctx, col, rows))
        self.column_table_ = pd.DataFrame(
            table, columns=["column", "rho", "worst_rate", "best_rate"]
        )
        insights.sort(key=lambda i: -i.severity)
        return insights

    # ------------------------------------------------------------------ numeric

    def _numeric(
        self, ctx: InsightContext, col: str, rows: np.ndarray, n_cols: int
    ) -> tuple[list[Insight], dict[str, Any]]:
        x = ctx.samples[col].to_numpy(np.float64)[rows]
        ok = np.isfinite(x)
        rows, x = rows[ok], x[ok]
        info: dict[str, Any] = {
            "column": col,
            "rho": np.nan,
            "worst_rate": np.nan,
            "best_rate": np.nan,
        }
        if len(rows) < 2 * self.n_bins:
            return [], info
        bins = pd.qcut(x, self.n_bins, labels=False, duplicates="drop").astype(np.int64)
        n_b = int(bins.max()) + 1
        if n_b < 3:
            return [], info
        err = ctx.errors[rows]
        loss = ctx.losses[rows]
        n = np.bincount(bins, minlength=n_b)
        e = np.bincount(bins, weights=err, minlength=n_b)
        loss_mean = np.bincount(bins, weights=loss, minlength=n_b) / n
        rate = e / n
        lo = np.array([x[bins == b].min() for b in range(n_b)])
        hi = np.array([x[bins == b].max() for b in range(n_b)])
        rho = (
            float(stats.spearmanr(np.arange(n_b), loss_mean).statistic)
            if np.ptp(loss_mean) > 0
            else 0.0
        )
        worst, best = (n_b - 1, 0) if rho >= 0 else (0, n_b - 1)
        smooth = (e + 0.5) / (n + 1)
        info.update(rho=rho, worst_rate=float(rate[worst]), best_rate=float(rate[best]))
        ratio = smooth[worst] / smooth[best]
        if abs(rho) < self.min_rho or ratio < self.min_ratio or e[worst] < self.min_errors:
            return [], info
        p = float(stats.binom.sf(e[worst] - 1, n[worst], smooth[best]))
        if not p < self.alpha / n_cols:
            return [], info

        p0 = float(err.mean())
        total_errors = max(float(err.sum()), 1.0)
        excess_share = max(0.0, e[worst] - n[worst] * p0) / total_errors
        severity = abs(rho) * (1 - smooth[best] / smooth[worst]) * saturate(excess_share, 0.2)
        unit = _BIN_NAMES.get(n_b, "bin")
        verb = "rises" if rho > 0 else "falls"
        text = (
            f"Error rate {verb} with {col}: {pct(rate[0])} in the lowest {unit} to "
            f"{pct(rate[-1])} in the highest (Spearman rho {rho:.2f} across {n_b} bins; "
            f"mean loss {loss_mean[0]:.3g} to {loss_mean[-1]:.3g})."
        )
        details = {
            "column": col,
            "n_samples": int(n[worst]),  # the worst bin's samples, as in sample_ids (capped)
            "rho": rho,
            "n_bins": n_b,
            "p_value": p,
            "bins": [
                {
                    "low": lo[b],
                    "high": hi[b],
                    "n": int(n[b]),
                    "errors": int(e[b]),
                    "error_rate": float(rate[b]),
                    "mean_loss": float(loss_mean[b]),
                }
                for b in range(n_b)
            ],
        }
        title = f"{col} predicts errors ({pct(rate[worst])} vs {pct(rate[best])})"
        ids = ordered_ids(ctx, rows[bins == worst], self.max_sample_ids)
        return [Insight("metadata_failure", severity, ids, text, title, details)], info

    # ------------------------------------------------------------------ categorical

    def _categorical(self, ctx: InsightContext, col: str, rows: np.ndarray) -> list[Insight]:
        series = ctx.samples[col].iloc[rows]
        values = series.astype(str).to_numpy()
        groups, counts = np.unique(values, return_counts=True)
        if len(groups) < 2 or len(groups) > 100:
            return []
        err = ctx.errors[rows]
        total_errors = max(float(err.sum()), 1.0)
        cutoff = self.alpha / len(groups)
        out = []
        for g, n_g in zip(groups, counts, strict=True):
            inside = values == g
            e_in, e_out = int(err[inside].sum()), int(err[~inside].sum())
            n_out = len(values) - n_g
            if n_g < self.min_group_size or e_in < self.min_errors or n_out == 0:
                continue
            r_in, r_out = e_in / n_g, e_out / n_out
            r_out_s = (e_out + 0.5) / (n_out + 1)
            if r_in < self.min_ratio * r_out_s:
                continue
            p = one_sided_p(stats.binomtest, e_in, int(n_g), r_out_s, alternative="greater")
            if not p < cutoff:
                continue
            ratio = r_in / r_out_s
            excess_share = max(0.0, e_in - n_g * r_out) / total_errors
            severity = saturate(excess_share, 0.1) * (1 - 1 / ratio)
            loss_in = float(ctx.losses[rows[inside]].mean())
            loss_out = float(ctx.losses[rows[~inside]].mean())
            text = (
                f"Samples with {col} = {g} ({int(n_g):,} samples) have {pct(r_in)} errors vs "
                f"{pct(r_out)} for the rest (mean loss {loss_in:.3g} vs {loss_out:.3g})."
            )
            details = {
                "column": col,
                "value": str(g),
                "n": int(n_g),
                "n_samples": int(n_g),
                "errors": e_in,
                "error_rate": r_in,
                "rest_error_rate": r_out,
                "mean_loss": loss_in,
                "rest_mean_loss": loss_out,
                "p_value": p,
            }
            title = f"{col} = {g}: {pct(r_in)} errors ({ratio:.1f}x)"
            ids = ordered_ids(ctx, rows[inside], self.max_sample_ids)
            out.append(Insight("metadata_failure", severity, ids, text, title, details))
        return _one_per_column(out)


def _one_per_column(found: list[Insight]) -> list[Insight]:
    """The worst value of a column, naming the other elevated values in its sentence.

    One card per column keeps e.g. ``gt_centroid_rank`` = 2, 3, 4 from filling the
    top of the list with one finding told three times.
    """
    if len(found) <= 1:
        return found
    found = sorted(found, key=lambda i: -i.severity)
    top, rest = found[0], found[1:]
    also = ", ".join(f"{i.details['value']} ({pct(i.details['error_rate'])})" for i in rest)
    text = f"{top.text[:-1]}; also elevated: {top.details['column']} = {also}."
    details = {**top.details, "also": [i.details for i in rest]}
    return [Insight(top.kind, top.severity, top.sample_ids, text, top.title, details)]

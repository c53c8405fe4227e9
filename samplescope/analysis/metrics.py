"""Classification metrics and binned aggregates over the per-sample table.

    cm = confusion_matrix(labels, preds, n_classes=10)        # rows = ground truth
    m = classification_metrics(labels, preds, losses, 10)      # accuracy, per_class, ...
    binned = aggregate(samples, x="confidence", y="correct")   # accuracy per confidence bin
    trend(binned)                                              # Spearman rho of mean vs x

Labels of -1 mean "unlabeled": they are left out of every metric.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from samplescope.errors import NotFoundError, ParameterError, SamplescopeError

__all__ = ["aggregate", "classification_metrics", "confusion_matrix", "trend"]

#: Default limits of :func:`aggregate`; its answer has at most groups x bins (or values) rows.
MAX_BINS = 10_000
MAX_GROUPS = 1_000
MAX_VALUES = 10_000


# --------------------------------------------------------------------------- classification


def _check_classes(name: str, values: np.ndarray, n_classes: int) -> None:
    bad = (values < 0) | (values >= n_classes)
    if bad.any():
        raise NotFoundError(
            f"{name} {int(values[bad][0])} is not a class index; expected [0, {n_classes - 1}]"
        )


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts: row = ground truth, column = prediction. Unlabeled (-1) skipped."""
    labels = np.asarray(labels).astype(np.int64, copy=False).reshape(-1)
    preds = np.asarray(preds).astype(np.int64, copy=False).reshape(-1)
    if labels.shape != preds.shape:
        raise SamplescopeError(f"labels {labels.shape} and preds {preds.shape} differ in length")
    keep = labels >= 0
    labels, preds = labels[keep], preds[keep]
    _check_classes("label", labels, n_classes)
    _check_classes("prediction", preds, n_classes)
    counts = np.bincount(labels * n_classes + preds, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).astype(np.int64)


def classification_metrics(
    labels: np.ndarray, preds: np.ndarray, losses: np.ndarray, n_classes: int
) -> dict[str, object]:
    """Overall and per-class metrics over labeled samples.

    Returns ``{"accuracy", "mean_loss", "count", "confusion", "per_class"}`` where
    ``per_class`` is a DataFrame with columns ``class, count, accuracy, precision,
    recall, mean_loss``. ``accuracy`` per class is the fraction of that class's
    samples predicted correctly (equal to recall); precision is NaN for a class
    never predicted, accuracy/recall/mean_loss are NaN for a class with no samples.
    """
    labels = np.asarray(labels).astype(np.int64, copy=False).reshape(-1)
    preds = np.asarray(preds).astype(np.int64, copy=False).reshape(-1)
    losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    if losses.shape != labels.shape:
        raise SamplescopeError(f"losses {losses.shape} and labels {labels.shape} differ in length")
    cm = confusion_matrix(labels, preds, n_classes)
    keep = labels >= 0
    loss_sum = np.bincount(labels[keep], weights=np.nan_to_num(losses[keep]), minlength=n_classes)
    loss_n = np.bincount(labels[keep], weights=~np.isnan(losses[keep]), minlength=n_classes)
    return metrics_from_counts(cm, loss_sum, loss_n)


def metrics_from_counts(cm: np.ndarray, loss_sum: np.ndarray, loss_n: np.ndarray) -> dict[str, object]:
    """:func:`classification_metrics` from its sufficient statistics.

    ``cm`` is the (C, C) confusion matrix of the labeled samples, ``loss_sum`` and
    ``loss_n`` the per-true-class sum and count of their non-NaN losses: what a
    database can compute with two GROUP BYs, so a run's metrics never load its rows.
    """
    cm = np.asarray(cm, dtype=np.int64)
    loss_sum = np.asarray(loss_sum, dtype=np.float64)
    loss_n = np.asarray(loss_n, dtype=np.float64)
    n_classes = len(cm)
    count = cm.sum(axis=1)  # (C,) samples per true class
    predicted = cm.sum(axis=0)  # (C,) samples per predicted class
    hits = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
        precision = np.where(predicted > 0, hits / np.maximum(predicted, 1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        class_loss = np.where(loss_n > 0, loss_sum / np.maximum(loss_n, 1), np.nan)
    per_class = pd.DataFrame(
        {
            "class": np.arange(n_classes),
            "count": count,
            "accuracy": recall,
            "precision": precision,
            "recall": recall,
            "mean_loss": class_loss,
        }
    )
    n = int(cm.sum())
    losses_n = float(loss_n.sum())
    return {
        "accuracy": float(hits.sum() / n) if n else float("nan"),
        "mean_loss": float(loss_sum.sum() / losses_n) if losses_n else float("nan"),
        "count": n,
        "confusion": cm,
        "per_class": per_class,
    }


# --------------------------------------------------------------------------- aggregates


def _column(df: pd.DataFrame, name: str, role: str) -> pd.Series:
    if name not in df.columns:
        raise NotFoundError(
            f"{role} column {name!r} is not in the table; available columns: "
            f"{', '.join(map(str, df.columns))}"
        )
    return df[name]


def _is_categorical(s: pd.Series, bins: int) -> bool:
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        return True
    return pd.api.types.is_integer_dtype(s) and s.nunique(dropna=True) <= bins


def _edges(values: np.ndarray, bins: int, binning: str) -> np.ndarray:
    if binning == "quantile":
        edges = np.quantile(values, np.linspace(0.0, 1.0, bins + 1))
    else:
        edges = np.linspace(values.min(), values.max(), bins + 1)
    edges = np.unique(edges)  # tied quantiles collapse into one bin
    if len(edges) == 1:  # every value equal: one bin [v, v]
        edges = np.repeat(edges, 2)
    return edges


def aggregate(
    df: pd.DataFrame,
    x: str,
    y: str = "loss",
    by: str | None = None,
    bins: int = 10,
    binning: Literal["quantile", "uniform"] = "quantile",
    *,
    max_bins: int = MAX_BINS,
    max_groups: int = MAX_GROUPS,
    max_values: int = MAX_VALUES,
) -> pd.DataFrame:
    """Summarise column ``y`` over bins (or values) of column ``x``, optionally per ``by``.

    Numeric ``x`` is cut into ``bins`` bins (``quantile``: equal counts, ties
    merged, so there may be fewer; ``uniform``: equal widths, empty bins kept
    with count 0). Bin ``i`` covers ``[x_lo, x_hi)``, the last one ``[x_lo, x_hi]``;
    edges are shared by all ``by`` groups. The result has columns

        [by], bin, x_lo, x_hi, x_mid, count, mean, std

    ``bool``, string and categorical ``x``, and integer ``x`` with at most
    ``bins`` distinct values, are grouped by value instead:

        [by], x_value, count, mean, std

    ``count`` is the number of rows in the group (rows with NaN ``x`` are left
    out); ``mean``/``std`` are over the group's non-NaN ``y`` (``y="correct"``
    gives accuracy). ``y="count"`` (when the table has no such column) only
    counts, without ``mean``/``std``. ``result.attrs`` records x, y, by, kind
    (``"binned"`` or ``"categorical"``) and binning.

    Limits (ParameterError, naming the limit): at most ``max_bins`` bins, ``max_groups``
    distinct values of ``by`` (NaN counts as one) and ``max_values`` distinct values of a
    grouped ``x``, so the answer has at most ``max_groups * max(max_bins, max_values)`` rows.
    """
    if binning not in ("quantile", "uniform"):
        raise SamplescopeError(f"binning={binning!r} is unknown; use 'quantile' or 'uniform'")
    if not 1 <= bins <= max_bins:
        raise ParameterError(f"bins={bins} is out of range; use 1 to {max_bins:,} (max_bins)")
    xs = _column(df, x, "x")
    count_only = y == "count" and "count" not in df.columns
    if count_only:
        ys = pd.Series(np.zeros(len(df)), index=df.index)
    else:
        ys = _column(df, y, "y")
        if not (pd.api.types.is_numeric_dtype(ys) or pd.api.types.is_bool_dtype(ys)):
            raise SamplescopeError(f"y column {y!r} is {ys.dtype}, not numeric; pick a numeric one")
        ys = ys.astype(np.float64)
    group = [] if by is None else [by]
    work = pd.DataFrame({"_y": ys.to_numpy()}, index=df.index)
    if by is not None:
        groups = _column(df, by, "by")
        n_groups = int(groups.nunique(dropna=False))
        if n_groups > max_groups:
            raise ParameterError(
                f"by={by!r} has {n_groups:,} distinct values; at most {max_groups:,} series are "
                f"allowed (max_groups); split by a column with fewer values (a class or a cluster)"
            )
        work[by] = groups.to_numpy()

    categorical = _is_categorical(xs, bins)
    if categorical:
        n_values = int(xs.nunique(dropna=True))
        if n_values > max_values:
            raise ParameterError(
                f"x={x!r} is grouped by value and has {n_values:,} distinct values; at most "
                f"{max_values:,} are allowed (max_values); pick a numeric x, which is binned"
            )
        work["x_value"] = xs.to_numpy()
        work = work[xs.notna().to_numpy()]
        keys = [*group, "x_value"]
    else:
        values = xs.to_numpy(dtype=np.float64)
        finite = ~np.isnan(values)
        work = work[finite]
        values = values[finite]
        if len(values) == 0:
            raise SamplescopeError(f"x column {x!r} has no non-NaN values to bin")
        edges = _edges(values, bins, binning)
        n_bins = len(edges) - 1
        work["bin"] = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, n_bins - 1)
        keys = [*group, "bin"]

    grouped = work.groupby(keys, sort=True, dropna=False, observed=True)["_y"]
    out = grouped.size().rename("count").to_frame()
    if not count_only:
        out["mean"] = grouped.mean()
        out["std"] = grouped.std()
    out = out.reset_index()

    if not categorical:
        # every bin present (count 0 when empty), for every group
        full = pd.DataFrame({"bin": np.arange(n_bins)})
        if by is not None:
            full = pd.DataFrame({by: pd.unique(work[by])}).merge(full, how="cross")
            full = full.sort_values([by, "bin"], kind="stable")
        out = full.merge(out, on=keys, how="left")
        out["count"] = out["count"].fillna(0).astype(np.int64)
        lo, hi = edges[:-1][out["bin"]], edges[1:][out["bin"]]
        out.insert(len(group) + 1, "x_lo", lo)
        out.insert(len(group) + 2, "x_hi", hi)
        out.insert(len(group) + 3, "x_mid", (lo + hi) / 2)
        out["bin"] = out["bin"].astype(np.int64)
    out["count"] = out["count"].astype(np.int64)
    out = out.reset_index(drop=True)
    out.attrs.update(
        x=x,
        y=y,
        by=by,
        kind="categorical" if categorical else "binned",
        binning=None if categorical else binning,
    )
    return out


def trend(binned: pd.DataFrame, value: str | None = None) -> float:
    """Spearman rank correlation between bin position and ``value`` (default ``mean``).

    For a binned :func:`aggregate` result of one group: +1 means ``y`` rises
    steadily with ``x``. Empty bins (NaN) are skipped; NaN when fewer than two
    bins remain or either side is constant.
    """
    if "bin" not in binned.columns:
        raise SamplescopeError(
            "trend needs a binned aggregate (numeric x, with a 'bin' column); "
            f"got columns {', '.join(map(str, binned.columns))}"
        )
    by = binned.attrs.get("by")
    if by is not None and by in binned.columns and binned[by].nunique() > 1:
        raise SamplescopeError(
            f"the aggregate has {binned[by].nunique()} groups of {by!r}; call trend on one "
            f"group at a time, e.g. trend(binned[binned[{by!r}] == value])"
        )
    if value is None:
        value = "mean" if "mean" in binned.columns else "count"
    col = _column(binned, value, "value")
    pairs = pd.DataFrame({"x": binned["bin"].to_numpy(), "y": col.to_numpy(dtype=float)}).dropna()
    if len(pairs) < 2:
        return float("nan")
    rx, ry = pairs["x"].rank().to_numpy(), pairs["y"].rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])

"""Regression: one real-valued target per sample.

Ground truth is a float (NaN when unlabeled; NULL in the table). The default head
has one output and is trained with MSE on *standardised* targets (the training
targets' mean and standard deviation, learned by :meth:`Regression.fit` and kept in
run.json), so one learning rate suits any scale; predictions are un-standardised
before anything is stored. The per-sample ``loss`` is the squared error in the
target's own units; an **error** is an absolute error above ``threshold``, or, when
none is given, above the 90th percentile of the validation subset's absolute errors
(the worst decile), stated in run.json's ``analysis.error``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from samplescope.errors import IntegrationError, ParameterError, SamplescopeError
from samplescope.tasks.base import Task

#: residual quantiles the metrics report
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def regression_metrics(labels: np.ndarray, preds: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE, R², mean squared error and residual (prediction - truth) quantiles over
    the rows with a finite label."""
    y = np.asarray(labels, np.float64).reshape(-1)
    p = np.asarray(preds, np.float64).reshape(-1)
    if y.shape != p.shape:
        raise SamplescopeError(f"labels {y.shape} and predictions {p.shape} differ in length")
    keep = np.isfinite(y)
    y, p = y[keep], p[keep]
    n = len(y)
    nan = float("nan")
    if not n:
        return {"count": 0, "mae": nan, "rmse": nan, "r2": nan, "mean_loss": nan,
                "residual_quantiles": {str(q): nan for q in QUANTILES}}  # fmt: skip
    residual = p - y
    mse = float(np.mean(residual**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / ss_tot if ss_tot > 0 else nan
    return {
        "count": int(n),
        "mae": float(np.mean(np.abs(residual))),
        "rmse": float(np.sqrt(mse)),
        "r2": r2,
        "mean_loss": mse,
        "residual_quantiles": {str(q): float(v) for q, v in zip(QUANTILES, np.quantile(residual, QUANTILES))},
    }


class Regression(Task):
    """``target``: what the value is called (axis labels, the page). ``threshold``: the
    absolute error above which a sample counts as an error; None = the worst decile of
    validation (``quantile=0.9`` of its absolute errors)."""

    name: ClassVar[str] = "regression"
    needs_classes: ClassVar[bool] = False
    views: ClassVar[tuple[str, ...]] = ("regression",)
    class_columns: ClassVar[tuple[str, ...]] = ()
    score_name: ClassVar[str] = "1 - MSE on standardised targets (R² against the training mean)"
    #: a continuous target has no classes to keep apart on the map overview (every value would be a
    #: group of one, and nothing kept per group): its deciles instead, NULL unlabelled
    map_group_sql: ClassVar[str] = 'CASE WHEN "label" IS NULL THEN NULL ELSE ntile(10) OVER (ORDER BY "label", "sample_id") END'
    labelled_sql: ClassVar[str] = '("label" IS NOT NULL AND isfinite("label"))'

    def __init__(self, target: str = "target", threshold: float | None = None, quantile: float = 0.9) -> None:
        if threshold is not None and not (isinstance(threshold, numbers.Real) and threshold >= 0):
            raise ParameterError(f"Regression threshold={threshold!r}; pass an absolute error >= 0, or None.")
        if not 0 < quantile < 1:
            raise ParameterError(f"Regression quantile={quantile!r}; pass a fraction between 0 and 1, e.g. 0.9.")
        self.target = str(target)
        self.threshold = None if threshold is None else float(threshold)
        self.quantile = float(quantile)
        self.target_mean_ = 0.0
        self.target_std_ = 1.0
        self.threshold_: float | None = None
        self.threshold_rows_: str | None = None  # which rows the learned threshold came from

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "threshold": self.threshold, "quantile": self.quantile,
                "target_mean": self.target_mean_, "target_std": self.target_std_}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Regression:
        task = cls(data.get("target", "target"), data.get("threshold"), data.get("quantile", 0.9))
        task.target_mean_ = float(data.get("target_mean", 0.0))
        task.target_std_ = float(data.get("target_std", 1.0))
        return task

    # -- ground truth -----------------------------------------------------------

    def encode_labels(self, values: Any, n: int, classes: Sequence[str]) -> np.ndarray:
        return np.asarray(values, dtype=np.float64).reshape(n)

    def unlabeled(self, n: int, classes: Sequence[str]) -> np.ndarray:
        return np.full(n, np.nan)

    def label_problem(self, value: Any, classes: Sequence[str]) -> str | None:
        y = value.item() if isinstance(value, np.ndarray) and value.size == 1 else value
        if isinstance(y, bool) or not isinstance(y, numbers.Real):
            return f"returned {y!r} ({type(y).__name__}), expected the {self.target} as a number (float)"
        if not np.isfinite(float(y)):
            return f"returned {y!r}; a regression target must be a finite number"
        return None

    def check_labels(self, y: np.ndarray, classes: Sequence[str], integration: str, subset: str) -> None:
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise IntegrationError(
                f"Integration {integration!r}: the ground truth of sample {subset}[{int(bad[0])}] is "
                f"{float(y[bad[0]])!r}, not a finite number ({bad.size} such samples in {subset}); "
                "fix the ground-truth function and run `samplescope check` on it."
            )

    def labelled(self, y: np.ndarray) -> np.ndarray:
        return np.isfinite(np.asarray(y, np.float64))

    def label_columns(self, y: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
        return {"label": np.asarray(y, np.float64)}

    def labels_from_table(self, frame: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
        return pd.to_numeric(frame["label"], errors="coerce").to_numpy(np.float64, na_value=np.nan)

    def label_summary(self, y: np.ndarray) -> list[Any]:
        y = np.asarray(y, np.float64)
        return [int(np.isfinite(y).sum()), round(float(np.nansum(y)), 6)]

    # -- training ---------------------------------------------------------------

    def output_width(self, classes: Sequence[str]) -> int:
        return 1

    def fit(self, y_train: np.ndarray) -> Regression:
        y = np.asarray(y_train, np.float64)
        y = y[np.isfinite(y)]
        if len(y):
            self.target_mean_ = float(y.mean())
            std = float(y.std())
            self.target_std_ = std if std > 0 else 1.0
        return self

    def training_targets(self, y: np.ndarray) -> np.ndarray:
        return ((np.asarray(y, np.float64) - self.target_mean_) / self.target_std_).astype(np.float32)

    def loss(self, outputs: Any, targets: Any, label_smoothing: float = 0.0) -> Any:
        import torch.nn.functional as F

        return F.mse_loss(outputs.reshape(-1), targets.reshape(-1).to(outputs.dtype))

    def plain_loss(self, outputs: Any, targets: Any, reduction: str = "mean") -> Any:
        import torch.nn.functional as F

        return F.mse_loss(outputs.reshape(-1), targets.reshape(-1).to(outputs.dtype), reduction=reduction)

    def score_sum(self, outputs: Any, targets: Any) -> Any:
        # per sample 1 - squared error in standard deviations: its mean is 1 - MSE/var = R²
        return (1.0 - (outputs.reshape(-1) - targets.reshape(-1)) ** 2).sum()

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        """Model outputs (N, 1) or (N,) -> predictions in the target's units."""
        out = np.asarray(outputs, np.float64)
        if out.ndim == 2 and out.shape[1] != 1:
            raise SamplescopeError(
                f"a regression model must output one value per sample, got shape {out.shape}; "
                "give the model a head of width 1"
            )
        return out.reshape(-1) * self.target_std_ + self.target_mean_

    # -- analysis ---------------------------------------------------------------

    def prediction_columns(
        self,
        outputs: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str] | None = None,
        reference: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """``prediction`` (float64, the target's units), ``residual`` (prediction - truth),
        ``abs_error``, ``loss`` (squared error, float32) and ``correct`` (absolute error at
        most the threshold); NaN and False for unlabeled rows."""
        pred = self.predict(outputs)
        y = np.asarray(labels, np.float64).reshape(-1)
        if y.shape != pred.shape:
            raise SamplescopeError(f"labels must be ({len(pred)},) to match the outputs, got shape {y.shape}")
        labelled = np.isfinite(y)
        residual = np.where(labelled, pred - np.where(labelled, y, 0.0), np.nan)
        abs_error = np.abs(residual)
        self.threshold_ = self._threshold(abs_error, labelled, reference)
        with np.errstate(invalid="ignore"):
            correct = labelled & (abs_error <= self.threshold_)
        return {
            "prediction": pred,
            "residual": residual.astype(np.float32),
            "abs_error": abs_error.astype(np.float32),
            "loss": (residual**2).astype(np.float32),
            "correct": correct,
        }

    def _threshold(self, abs_error: np.ndarray, labelled: np.ndarray, reference: np.ndarray | None) -> float:
        if self.threshold is not None:
            return self.threshold
        rows = labelled if reference is None else labelled & np.asarray(reference, bool)
        if not rows.any():
            rows = labelled
        if not rows.any():
            return float("inf")
        self.threshold_rows_ = "validation" if reference is not None and (labelled & reference).any() else "all"
        return float(np.quantile(abs_error[rows], self.quantile))

    def error_rule(self) -> dict[str, Any]:
        t = self.threshold_ if self.threshold_ is not None else self.threshold
        if self.threshold is not None:
            source = "the integration's threshold"
        else:
            rows = self.threshold_rows_ or "validation"
            worst = round((1 - self.quantile) * 100)
            source = f"the {self.quantile:.0%} quantile of {rows} absolute errors (the worst {worst}% are errors)"
        return {"rule": f"|prediction - {self.target}| > {t:.4g}, {source}", "threshold": t, "source": source}

    # -- metrics ----------------------------------------------------------------

    def metric_columns(self, classes: Sequence[str]) -> list[str]:
        return ["label", "prediction", "correct"]

    def metrics(self, frame: pd.DataFrame, classes: Sequence[str]) -> dict[str, Any]:
        labels = self.labels_from_table(frame, classes)
        out = regression_metrics(labels, frame["prediction"].to_numpy(np.float64, na_value=np.nan))
        labelled = np.isfinite(labels)
        ok = frame["correct"].to_numpy(bool, na_value=False)[labelled]
        out["error_rate"] = float(1 - ok.mean()) if len(ok) else float("nan")
        return {"task": self.name, "target": self.target, **out}

    def headline(self, metrics: dict[str, Any]) -> list[tuple[str, float]]:
        return [("MAE", metrics["mae"]), ("RMSE", metrics["rmse"]), ("R²", metrics["r2"])]

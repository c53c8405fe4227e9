"""Multi-label: each sample carries a set of the classes (none, one or several).

Ground truth, from the integration: a list of class indices (``[3, 7]``) or a (C,)
0/1 vector (a numpy array); encoded as (N, C) int8 0/1, a row of -1 when unlabeled.
The model outputs one logit per class, trained with ``BCEWithLogits``; a label is
predicted when its sigmoid probability is at least ``threshold`` (0.5).

In the samples table (the representation every layer reads):

- ``label``: the set as text, class names joined by ``+`` (``"3+7"``; ``"none"`` for
  the empty set; NULL when unlabeled), and ``label_0`` .. ``label_{C-1}``: booleans;
- ``prediction``: the predicted set as text, ``pred_0`` .. ``pred_{C-1}``: booleans,
  ``prob_0`` .. ``prob_{C-1}``: the sigmoid probabilities;
- ``loss``: the per-sample binary cross-entropy, averaged over the C labels;
- ``correct``: every label right (an exact match); ``n_wrong``: how many labels are
  wrong; ``confidence``: the least certain label decision, min over k of max(p, 1 - p).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from samplescope.errors import IntegrationError, ParameterError, SamplescopeError
from samplescope.tasks.base import Task

NONE = "none"  # the label text of the empty set


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall step curve: sum over thresholds of
    (R_i - R_{i-1}) P_i, ties in ``scores`` taken together; NaN without positives."""
    y = np.asarray(y).astype(bool)
    positives = int(y.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    s, hit = np.asarray(scores, np.float64)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of each distinct score
    tp = np.cumsum(hit)[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def multilabel_metrics(labels: np.ndarray, preds: np.ndarray, probs: np.ndarray, losses: np.ndarray
                       ) -> dict[str, Any]:
    """Per-label precision, recall, F1 and average precision; exact-match rate, label-wise
    accuracy, micro and macro F1 and mean loss; over the labelled rows (no -1)."""
    y = np.asarray(labels)
    keep = (y >= 0).all(axis=1)
    y = y[keep].astype(bool)
    p = np.asarray(preds)[keep].astype(bool)
    pr = np.asarray(probs, np.float64)[keep]
    loss = np.asarray(losses, np.float64)[keep]
    n, c = y.shape
    tp = (y & p).sum(0)
    fp = (~y & p).sum(0)
    fn = (y & ~p).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    per_label = pd.DataFrame({
        "class": np.arange(c), "support": y.sum(0), "predicted": p.sum(0),
        "precision": precision, "recall": recall, "f1": f1,
        "average_precision": [average_precision(y[:, k], pr[:, k]) for k in range(c)],
    })  # fmt: skip
    nan = float("nan")
    micro = 2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()) if (2 * tp.sum() + fp.sum() + fn.sum()) else nan
    return {
        "count": int(n),
        "exact_match": float((y == p).all(1).mean()) if n else nan,
        "label_accuracy": float((y == p).mean()) if n else nan,
        "micro_f1": float(micro),
        "macro_f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else nan,
        "mean_average_precision": float(np.nanmean(per_label["average_precision"]))
        if per_label["average_precision"].notna().any() else nan,
        "mean_loss": float(np.nanmean(loss)) if n else nan,
        "per_label": per_label,
    }


class MultiLabel(Task):
    """``threshold``: the probability from which a label is predicted (0.5)."""

    name: ClassVar[str] = "multilabel"
    needs_classes: ClassVar[bool] = True
    views: ClassVar[tuple[str, ...]] = ("per_label",)
    class_columns: ClassVar[tuple[str, ...]] = ()
    score_name: ClassVar[str] = "exact-match rate (every label right)"

    def __init__(self, threshold: float = 0.5) -> None:
        if not (isinstance(threshold, numbers.Real) and 0 < threshold < 1):
            raise ParameterError(f"MultiLabel threshold={threshold!r}; pass a probability between 0 and 1.")
        self.threshold = float(threshold)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultiLabel:
        return cls(data.get("threshold", 0.5))

    # -- ground truth -----------------------------------------------------------

    def _one(self, value: Any, c: int) -> np.ndarray:
        problem = self.label_problem(value, range(c))  # type: ignore[arg-type]
        if problem:
            raise IntegrationError(f"the multi-label ground truth {problem}")
        row = np.zeros(c, np.int8)
        if isinstance(value, np.ndarray):
            row[:] = value.astype(np.int8)
        else:
            row[[int(i) for i in value]] = 1
        return row

    def encode_labels(self, values: Any, n: int, classes: Sequence[str]) -> np.ndarray:
        c = len(classes)
        if isinstance(values, np.ndarray) and values.ndim == 2:  # a batched (B, C) 0/1 array
            if values.shape != (n, c):
                raise IntegrationError(
                    f"the batched multi-label ground truth has shape {values.shape}; return ({n}, {c}) 0/1 "
                    "or a list of class-index lists"
                )
            return values.astype(np.int8)
        out = np.zeros((n, c), np.int8)
        for i, v in enumerate(values):
            out[i] = self._one(v, c)
        return out

    def unlabeled(self, n: int, classes: Sequence[str]) -> np.ndarray:
        return np.full((n, len(classes)), -1, np.int8)

    def label_problem(self, value: Any, classes: Sequence[str]) -> str | None:
        c = len(classes)
        if isinstance(value, np.ndarray):
            if value.shape != (c,):
                return f"returned an array of shape {value.shape}; expected a ({c},) 0/1 vector or a list of class indices"
            if not np.isin(value, (0, 1)).all():
                return f"returned {value.tolist()}; a label vector holds only 0 and 1"
            return None
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
            return f"returned {value!r} ({type(value).__name__}); expected a list of class indices or a ({c},) 0/1 array"
        for i in value:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                return f"returned {list(value)!r}: {i!r} is not a class index (int)"
            if not 0 <= int(i) < c:
                return f"returned class index {i}, outside 0..{c - 1} (the integration has {c} classes)"
        if len(set(value)) != len(list(value)):
            return f"returned {list(value)!r}, a class more than once"
        return None

    def labelled(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y) >= 0).all(axis=1)

    def label_columns(self, y: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
        y = np.asarray(y)
        labelled = self.labelled(y)
        cols: dict[str, Any] = {"label": np.where(labelled, _names(y > 0, classes), None)}
        for k in range(y.shape[1]):
            cols[f"label_{k}"] = pd.array(np.where(labelled, y[:, k] > 0, False), dtype="boolean")
            cols[f"label_{k}"][~labelled] = pd.NA
        return cols

    def label_table_columns(self, classes: Sequence[str]) -> list[str]:
        return [f"label_{k}" for k in range(len(classes))]

    def labels_from_table(self, frame: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
        out = np.empty((len(frame), len(classes)), np.int8)
        for k in range(len(classes)):
            col = frame[f"label_{k}"]
            out[:, k] = np.where(col.isna().to_numpy(), -1, col.fillna(False).to_numpy(bool).astype(np.int8))
        out[(out < 0).any(axis=1)] = -1
        return out

    def label_summary(self, y: np.ndarray) -> list[Any]:
        y = np.asarray(y)
        return (y[self.labelled(y)] > 0).sum(0).astype(int).tolist()

    # -- training ---------------------------------------------------------------

    def output_width(self, classes: Sequence[str]) -> int:
        return len(classes)

    def training_targets(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, np.float32)

    def loss(self, outputs: Any, targets: Any, label_smoothing: float = 0.0) -> Any:
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(outputs, targets.to(outputs.dtype))

    def plain_loss(self, outputs: Any, targets: Any, reduction: str = "mean") -> Any:
        import torch.nn.functional as F

        per_sample = F.binary_cross_entropy_with_logits(outputs, targets.to(outputs.dtype), reduction="none").mean(1)
        return per_sample.sum() if reduction == "sum" else per_sample.mean()

    def score_sum(self, outputs: Any, targets: Any) -> Any:
        cut = float(np.log(self.threshold / (1 - self.threshold)))  # the logit of the threshold
        return ((outputs >= cut) == (targets > 0.5)).all(1).sum()

    # -- analysis ---------------------------------------------------------------

    def prediction_columns(
        self,
        outputs: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str] | None = None,
        reference: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        z = np.asarray(outputs, np.float64)
        y = np.asarray(labels)
        if z.ndim != 2 or y.shape != z.shape:
            raise SamplescopeError(
                f"multi-label outputs {z.shape} and labels {y.shape} must both be (N, C) with the same shape"
            )
        c = z.shape[1]
        names = list(classes) if classes is not None else [str(k) for k in range(c)]
        probs = 1.0 / (1.0 + np.exp(-z))
        pred = probs >= self.threshold
        labelled = self.labelled(y)
        t = np.where(labelled[:, None], y, 0).astype(np.float64)
        # binary cross-entropy with logits, stable: max(z, 0) - z t + log(1 + exp(-|z|))
        bce = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        wrong = (pred != (t > 0)).sum(1)
        columns: dict[str, np.ndarray] = {
            "prediction": _names(pred, names),
            "loss": np.where(labelled, bce.mean(1), np.nan).astype(np.float32),
            "confidence": np.maximum(probs, 1 - probs).min(1).astype(np.float32),
            "correct": labelled & (wrong == 0),
            "n_wrong": np.where(labelled, wrong, np.nan).astype(np.float32),
        }
        for k in range(c):
            columns[f"pred_{k}"] = pred[:, k]
        for k in range(c):
            columns[f"prob_{k}"] = probs[:, k].astype(np.float32)
        return columns

    def error_rule(self) -> dict[str, Any]:
        return {"rule": f"any label decided wrongly (a label is predicted when its probability >= {self.threshold:g})",
                "threshold": self.threshold}  # fmt: skip

    # -- metrics ----------------------------------------------------------------

    def metric_columns(self, classes: Sequence[str]) -> list[str]:
        c = range(len(classes))
        return [*self.label_table_columns(classes), *[f"pred_{k}" for k in c], *[f"prob_{k}" for k in c], "loss"]

    def metrics(self, frame: pd.DataFrame, classes: Sequence[str]) -> dict[str, Any]:
        c = range(len(classes))
        labels = self.labels_from_table(frame, classes)
        preds = np.stack([frame[f"pred_{k}"].to_numpy(bool, na_value=False) for k in c], 1)
        probs = np.stack([frame[f"prob_{k}"].to_numpy(np.float64, na_value=np.nan) for k in c], 1)
        out = multilabel_metrics(labels, preds, probs, frame["loss"].to_numpy(np.float64, na_value=np.nan))
        out["per_label"].insert(1, "name", [str(classes[k]) for k in c])
        return {"task": self.name, **out}

    def headline(self, metrics: dict[str, Any]) -> list[tuple[str, float]]:
        return [("exact match", metrics["exact_match"]), ("macro F1", metrics["macro_f1"]),
                ("mean loss", metrics["mean_loss"])]  # fmt: skip


def _names(mask: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Each row's set of classes as text: names joined by '+', 'none' when empty."""
    names = [str(c) for c in classes]
    return np.asarray(["+".join(names[k] for k in np.flatnonzero(row)) or NONE for row in mask], dtype=object)

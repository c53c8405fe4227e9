"""Classification: one class per sample; the behaviour samplescope always had.

Ground truth is a class index (int64, -1 when unlabeled); the model outputs one
logit per class; the loss is cross-entropy; an error is a wrong top-1 class; the
page and report show a confusion matrix.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from samplescope.errors import IntegrationError, NotFoundError, SamplescopeError
from samplescope.tasks.base import Task

_BLOCK = 65_536  # rows of float64 softmax temporaries at a time


class Classification(Task):
    name: ClassVar[str] = "classification"
    needs_classes: ClassVar[bool] = True
    views: ClassVar[tuple[str, ...]] = ("confusion",)
    class_columns: ClassVar[tuple[str, ...]] = ("label", "prediction")
    score_name: ClassVar[str] = "accuracy"
    labelled_sql: ClassVar[str] = '("label" >= 0)'

    # -- ground truth -----------------------------------------------------------

    def encode_labels(self, values: Any, n: int, classes: Sequence[str]) -> np.ndarray:
        return np.asarray(values, dtype=np.int64).reshape(n)

    def unlabeled(self, n: int, classes: Sequence[str]) -> np.ndarray:
        return np.full(n, -1, np.int64)

    def label_problem(self, value: Any, classes: Sequence[str]) -> str | None:
        y = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
        n = len(classes)
        if isinstance(y, bool) or not isinstance(y, numbers.Integral):
            return f"returned {y!r} ({type(y).__name__}), expected a class index (int)"
        if not 0 <= int(y) < n:
            return f"returned class index {y}, outside 0..{n - 1} (the integration has {n} classes)"
        return None

    def check_labels(self, y: np.ndarray, classes: Sequence[str], integration: str, subset: str) -> None:
        n = len(classes)
        bad = np.flatnonzero((y < 0) | (y >= n))
        if bad.size:
            first = int(bad[0])
            raise IntegrationError(
                f"Integration {integration!r}: the ground truth of sample {subset}[{first}] is class index "
                f"{int(y[first])}, outside 0..{n - 1} ({bad.size} such samples in {subset}); fix the ground-truth function "
                "and run `samplescope check` on the integration."
            )

    def labelled(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y) >= 0

    def label_columns(self, y: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
        return {"label": np.asarray(y, np.int64)}

    def labels_from_table(self, frame: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
        return frame["label"].to_numpy(np.int64)

    def label_summary(self, y: np.ndarray) -> list[Any]:
        return np.bincount(np.asarray(y, np.int64)[np.asarray(y) >= 0]).tolist()

    # -- training ---------------------------------------------------------------

    def output_width(self, classes: Sequence[str]) -> int:
        return len(classes)

    def loss(self, outputs: Any, targets: Any, label_smoothing: float = 0.0) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(outputs, targets, label_smoothing=label_smoothing)

    def plain_loss(self, outputs: Any, targets: Any, reduction: str = "mean") -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(outputs, targets, reduction=reduction)

    def score_sum(self, outputs: Any, targets: Any) -> Any:
        return (outputs.argmax(1) == targets).sum()

    # -- analysis ---------------------------------------------------------------

    def prediction_columns(
        self,
        outputs: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str] | None = None,
        reference: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """``prediction`` (int64), ``loss`` (cross-entropy via a stable log-softmax, float32),
        ``confidence`` (top-1 probability), ``margin`` (top-1 minus top-2 probability),
        ``correct`` (bool) and ``prob_0`` .. ``prob_{C-1}`` (float32). A label of -1 means
        unlabeled: its loss is NaN and ``correct`` is False."""
        logits = np.asarray(outputs)
        labels = np.asarray(labels).astype(np.int64, copy=False)
        if logits.ndim != 2:
            raise SamplescopeError(f"logits must be (N, C), got shape {logits.shape}")
        n, c = logits.shape
        if labels.shape != (n,):
            raise SamplescopeError(f"labels must be ({n},) to match logits, got shape {labels.shape}")
        bad = (labels < -1) | (labels >= c)
        if bad.any():
            raise NotFoundError(
                f"label {int(labels[bad][0])} is not a class index; labels must be in "
                f"[0, {c - 1}] or -1 for unlabeled"
            )

        labeled = labels >= 0
        prediction = np.empty(n, np.int64)
        loss = np.full(n, np.nan, np.float32)
        confidence = np.empty(n, np.float32)
        margin = np.empty(n, np.float32)
        probs_out = np.empty((c, n), np.float32)  # one contiguous column per class
        # float64 in row blocks: the (block, C) temporaries stay small whatever N is
        for start in range(0, n, _BLOCK):
            at = slice(start, min(n, start + _BLOCK))
            block = np.asarray(logits[at], dtype=np.float64)
            # log-softmax: z - logsumexp(z), shifted by the row max so exp never overflows
            shifted = block - block.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (B, C)
            probs = np.exp(log_probs)
            lab = labels[at]
            ok = lab >= 0
            loss[at][ok] = -log_probs[ok, lab[ok]]
            prediction[at] = block.argmax(axis=1)
            confidence[at] = probs.max(axis=1)
            if c >= 2:
                top2 = np.partition(probs, c - 2, axis=1)[:, c - 2 :]  # (B, 2): 2nd largest, largest
                margin[at] = top2[:, 1] - top2[:, 0]
            else:
                margin[at] = probs[:, 0]
            probs_out[:, at] = probs.T

        columns: dict[str, np.ndarray] = {
            "prediction": prediction,
            "loss": loss,
            "confidence": confidence,
            "margin": margin,
            "correct": labeled & (prediction == labels),
        }
        for k in range(c):
            columns[f"prob_{k}"] = probs_out[k]
        return columns

    def error_rule(self) -> dict[str, Any]:
        return {"rule": "the top-1 predicted class differs from the ground truth"}

    def insight_view(
        self, samples: pd.DataFrame, labels: np.ndarray, classes: Sequence[str]
    ) -> tuple[pd.DataFrame, list[str]]:
        return samples, list(classes)

    # -- metrics ----------------------------------------------------------------

    def metric_columns(self, classes: Sequence[str]) -> list[str]:
        return ["label", "prediction", "loss"]

    def metrics(self, frame: pd.DataFrame, classes: Sequence[str]) -> dict[str, Any]:
        from samplescope.analysis.metrics import classification_metrics

        return {"task": self.name, **classification_metrics(
            frame["label"].to_numpy(), frame["prediction"].to_numpy(), frame["loss"].to_numpy(), len(classes)
        )}

    def headline(self, metrics: dict[str, Any]) -> list[tuple[str, float]]:
        return [("accuracy", metrics["accuracy"]), ("mean loss", metrics["mean_loss"])]

"""Run a trained classifier over a dataset once: logits and a latent vector per sample.

The latent vector is what a chosen layer sees (its input, by default) during the
same forward pass that produces the predictions, caught with a forward hook.
For a classifier ending in ``nn.Linear`` the input of that last linear layer is
the embedding the decision is made on, so that is the default layer.

    result = run_inference(model, batches)          # batches of (B, C, H, W) float32
    cols = prediction_columns(result.logits, labels)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn

from samplescope.errors import NotFoundError, SamplescopeError

if TYPE_CHECKING:
    from samplescope.tasks import Task

logger = logging.getLogger(__name__)

__all__ = [
    "InferenceResult",
    "default_latent_layer",
    "list_layers",
    "prediction_columns",
    "run_inference",
]


@dataclass(frozen=True)
class InferenceResult:
    """What one pass over the data gives: ``logits`` (N, C) and ``latent`` (N, D), float32."""

    logits: np.ndarray
    latent: np.ndarray
    layer: str
    capture: Literal["input", "output"]

    def __len__(self) -> int:
        return len(self.logits)


# --------------------------------------------------------------------------- layers


def list_layers(model: nn.Module) -> list[str]:
    """Dotted names of every submodule of ``model`` (the root itself excluded), in order."""
    return [name for name, _ in model.named_modules() if name]


def _get_layer(model: nn.Module, layer: str) -> nn.Module:
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        raise NotFoundError(
            f"layer {layer!r} is not a submodule of {type(model).__name__}; "
            f"valid layer names: {', '.join(list_layers(model)) or '(none)'}"
        )
    return modules[layer]


def default_latent_layer(model: nn.Module) -> str:
    """Name of the last ``nn.Linear`` in ``model``; its input is the latent vector."""
    linear = [name for name, m in model.named_modules() if name and isinstance(m, nn.Linear)]
    if not linear:
        raise SamplescopeError(
            f"{type(model).__name__} has no nn.Linear layer to take the latent vector from; "
            f"pass layer=... explicitly, one of: {', '.join(list_layers(model)) or '(none)'}"
        )
    return linear[-1]


# --------------------------------------------------------------------------- inference


class _Rows:
    """Rows collected batch by batch: into one preallocated array when the total is known."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.parts: list[np.ndarray] = []
        self.buffer: np.ndarray | None = None
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def add(self, rows: np.ndarray) -> None:
        if self.total is None:
            self.parts.append(rows.copy())  # a copy: never a view of the caller's batch
        else:
            if self.buffer is None:
                self.buffer = np.empty((self.total, *rows.shape[1:]), dtype=np.float32)
            if self.n + len(rows) > self.total:
                raise SamplescopeError(
                    f"the batches hold more than n_samples={self.total} rows; pass the right "
                    "n_samples or leave it None"
                )
            self.buffer[self.n : self.n + len(rows)] = rows
        self.n += len(rows)

    def result(self) -> np.ndarray:
        if self.total is None:
            out = np.concatenate(self.parts)
            self.parts.clear()
            return out
        if self.n != self.total:
            raise SamplescopeError(
                f"the batches held {self.n} rows, not n_samples={self.total}; pass the right "
                "n_samples or leave it None"
            )
        assert self.buffer is not None
        return self.buffer


def _first_tensor(value: object) -> torch.Tensor:
    """The tensor a hook saw: itself, or the first tensor of a tuple/list."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            if isinstance(v, torch.Tensor):
                return v
    raise SamplescopeError(
        f"the hooked layer passed a {type(value).__name__}, not a tensor; choose another layer"
    )


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def run_inference(
    model: nn.Module,
    batches: Iterable[np.ndarray | torch.Tensor],
    layer: str | None = None,
    capture: Literal["input", "output"] = "input",
    progress: bool = False,
    n_samples: int | None = None,
) -> InferenceResult:
    """Predict every batch and catch the latent vector of ``layer`` in the same pass.

    ``batches`` yields (B, C, H, W) float32 arrays or tensors. ``layer`` defaults to
    :func:`default_latent_layer`; ``capture`` picks the layer's input (default) or
    output, flattened to (B, D). The model is put in eval mode and run under
    ``torch.inference_mode``; its previous training mode is restored afterwards.

    Results are copied out batch by batch. With ``n_samples`` (the total number
    of rows the batches hold) they go straight into preallocated arrays;
    without it, into one array per batch joined at the end (twice the memory
    for a moment).
    """
    if capture not in ("input", "output"):
        raise SamplescopeError(f"capture={capture!r} is not valid; use 'input' or 'output'")
    layer = default_latent_layer(model) if layer is None else layer
    module = _get_layer(model, layer)
    device = _model_device(model)

    caught: list[torch.Tensor] = []

    def hook(_m: nn.Module, inputs: tuple[object, ...], output: object) -> None:
        caught.append(_first_tensor(inputs if capture == "input" else output))

    logits_out = _Rows(n_samples)
    latent_out = _Rows(n_samples)
    iterator: Iterable[np.ndarray | torch.Tensor] = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="inference", unit="batch")

    was_training = model.training
    model.to(memory_format=torch.channels_last)  # same weights, faster layout for 4-D inputs
    handle = module.register_forward_hook(hook)
    model.eval()
    try:
        with torch.inference_mode():
            for i, batch in enumerate(iterator):
                x = torch.as_tensor(batch, dtype=torch.float32).to(device)  # (B, C, H, W)
                if x.ndim == 4:  # channels-last convolutions are ~1.5x faster on CPU
                    x = x.contiguous(memory_format=torch.channels_last)
                caught.clear()
                logits = model(x)  # (B, C)
                if len(caught) != 1:
                    raise SamplescopeError(
                        f"layer {layer!r} ran {len(caught)} times in one forward pass of batch "
                        f"{i}; choose a layer that runs exactly once, e.g. "
                        f"{default_latent_layer(model)!r}"
                    )
                logits_out.add(logits.float().cpu().numpy())
                latent_out.add(caught[0].reshape(len(x), -1).float().contiguous().cpu().numpy())  # (B, D)
                caught.clear()
    finally:
        handle.remove()
        model.train(was_training)

    if not len(logits_out):
        raise SamplescopeError("run_inference got no batches; the data iterable was empty")
    logits_all, latent_all = logits_out.result(), latent_out.result()
    logger.debug(
        "inference: %d samples, latent %s from %r", len(logits_all), latent_all.shape, layer
    )
    return InferenceResult(logits=logits_all, latent=latent_all, layer=layer, capture=capture)


# --------------------------------------------------------------------------- predictions


def prediction_columns(
    logits: np.ndarray,
    labels: np.ndarray,
    task: Task | None = None,
    classes: list[str] | None = None,
    reference: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-sample prediction columns from the model's outputs and the labels; the task's
    (:meth:`samplescope.tasks.Task.prediction_columns`), classification by default.

    Classification: ``logits`` (N, C) and ``labels`` (N,) give ``prediction`` (int64),
    ``loss`` (cross-entropy via a stable log-softmax, float32), ``confidence`` (top-1
    probability), ``margin`` (top-1 minus top-2 probability), ``correct`` (bool) and
    ``prob_0`` .. ``prob_{C-1}`` (float32). A label of -1 means unlabeled: its loss is
    NaN and ``correct`` is False. Every task gives ``prediction``, ``loss`` and ``correct``.
    """
    from samplescope.tasks import Classification

    task = task or Classification()
    return task.prediction_columns(logits, labels, classes, reference=reference)

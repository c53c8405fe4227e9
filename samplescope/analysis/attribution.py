"""Which parts of the input drove a prediction: Grad-CAM, Integrated Gradients, saliency.

    attr = Attribution(model, "gradcam")
    heat = attr.attribute(image, target=3)            # (C, H, W) -> (H, W) float32
    heats = gradcam_batch(model, images, targets)     # (B, C, H, W) -> (B, H, W)
    Attribution(mlp, "integrated_gradients", input_kind="vector").attribute(x, 1)   # (F,) -> (F,)
    Attribution(tok, "integrated_gradients", input_kind="tokens").attribute(ids, 0) # (T,) -> (T,)

Which methods apply depends on the input kind (:func:`applicable_methods` says
which, and why the others do not): images take all three; vectors (tabular
features) take Integrated Gradients and saliency, one value per feature; token
ids take Integrated Gradients through the embedding layer, one value per token.

Every method is Captum's, called the way the tests call it directly:

``gradcam``
    ``captum.attr.LayerGradCam`` on the last conv layer (the model's
    ``gradcam_layer`` attribute names it if present, else the last
    ``nn.Conv2d``), with ``relu_attributions=True`` (the ReLU of the original
    Grad-CAM paper: only evidence *for* the target class is kept), then
    upsampled to the input's H x W with ``LayerAttribution.interpolate``
    (bilinear). Values are >= 0.
``integrated_gradients``
    ``captum.attr.IntegratedGradients`` from an all-zero baseline with
    ``n_steps`` Gauss-Legendre steps, summed over channels. Signed.
``saliency``
    ``captum.attr.Saliency`` (absolute gradients), max over channels. Values >= 0.

For a vector the same Captum calls give one value per feature (no channel
reduction); Integrated Gradients starts from ``baseline`` (default all zeros; the
run passes its MLP's training mean, so a feature's value says how far its
difference from an average sample moved the output). For tokens,
``captum.attr.LayerIntegratedGradients`` on the embedding layer (the model's
``embedding_layer`` attribute, else its last ``nn.Embedding``) from an all-padding
(id 0) baseline, summed over the embedding's dimensions: one signed value per token.

The model runs in eval mode (its previous mode is restored after) and
gradients go through ``torch.autograd.grad`` only: parameters' ``.grad`` stay
untouched and the caller's input tensor is never modified.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from samplescope.analysis.methods import methods_for_kind
from samplescope.errors import NotFoundError, ParameterError, SamplescopeError

logger = logging.getLogger(__name__)

__all__ = [
    "ATTRIBUTION_METHODS", "Attribution", "applicable_methods", "default_gradcam_layer", "gradcam_batch",
]

ATTRIBUTION_METHODS: tuple[str, ...] = ("gradcam", "integrated_gradients", "saliency")
METHOD_NAMES = {"gradcam": "Grad-CAM", "integrated_gradients": "Integrated Gradients", "saliency": "saliency"}
#: the shape one input of each kind has, without the batch axis
_SHAPES = {"image": "(C, H, W)", "vector": "(F,)", "tokens": "(T,)"}
_BATCH_SHAPES = {"image": "(B, C, H, W)", "vector": "(B, F)", "tokens": "(B, T)"}

Targets = int | Sequence[int] | np.ndarray | torch.Tensor


# --------------------------------------------------------------------------- helpers


def default_gradcam_layer(model: nn.Module) -> str:
    """``model.gradcam_layer`` if the model names one, else the last ``nn.Conv2d``."""
    named = getattr(model, "gradcam_layer", None)
    if isinstance(named, str):
        return named
    if isinstance(named, nn.Module):
        for name, module in model.named_modules():
            if module is named:
                return name
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ParameterError(
            f"Grad-CAM needs a convolution layer and {type(model).__name__} has no nn.Conv2d; use "
            "method='integrated_gradients' or 'saliency', or name a layer with create_run(..., gradcam_layer=...)"
        )
    return convs[-1]


def default_embedding_layer(model: nn.Module) -> str:
    """``model.embedding_layer`` if the model names one, else the last ``nn.Embedding``."""
    named = getattr(model, "embedding_layer", None)
    if isinstance(named, str):
        return named
    found = [name for name, m in model.named_modules() if isinstance(m, nn.Embedding)]
    if not found:
        raise ParameterError(
            f"attributions for token inputs go through an embedding layer and {type(model).__name__} has no "
            "nn.Embedding; add one, or set an `embedding_layer` attribute naming the layer"
        )
    return found[-1]


def applicable_methods(input_kind: str, model: nn.Module | None = None, layer: str | None = None) -> dict[str, str | None]:
    """``{method: None}`` for each method that applies to ``input_kind`` (and ``model``), else why not.

    ``layer`` is a recorded Grad-CAM layer (it makes Grad-CAM apply to an image model without
    an ``nn.Conv2d`` attribute search).
    """
    out = methods_for_kind(input_kind)
    if input_kind in ("vector", "tokens"):
        return out
    if model is not None and layer is None:
        try:
            default_gradcam_layer(model)
        except SamplescopeError:
            out["gradcam"] = f"Grad-CAM needs a convolution layer and {type(model).__name__} has no nn.Conv2d"
    return out


def _get_layer(model: nn.Module, layer: str) -> nn.Module:
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        names = [n for n in modules if n]
        raise NotFoundError(
            f"layer {layer!r} is not a submodule of {type(model).__name__}; "
            f"valid layer names: {', '.join(names) or '(none)'}"
        )
    return modules[layer]


def _as_batch(
    x: np.ndarray | torch.Tensor, device: torch.device, kind: str = "image", where: str = "attribution"
) -> tuple[torch.Tensor, bool]:
    """A fresh float32 (B, ...) tensor, and whether the input was a single sample of ``kind``."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x, dtype=np.float32))
    ndim = 3 if kind == "image" else 1
    single = t.ndim == ndim
    if single:
        t = t.unsqueeze(0)
    if t.ndim != ndim + 1:
        raise ParameterError(
            f"{where}: {kind} inputs must be {_SHAPES[kind]} or {_BATCH_SHAPES[kind]}, got shape {tuple(t.shape)}; "
            + ("pass input_kind='vector' for tabular inputs" if kind == "image" and t.ndim <= 2
               else "encode every sample to that shape")
        )
    # clone: a fresh leaf outside any inference_mode, never the caller's tensor
    return t.detach().to(device=device, dtype=torch.float32).clone().requires_grad_(True), single


def _n_classes(model: nn.Module, x: torch.Tensor) -> int:
    """Number of logits, from one forward pass of one input."""
    with torch.no_grad():
        return int(model(x[:1]).shape[-1])


def _targets(target: Targets, batch: int, n_classes: int, device: torch.device) -> torch.Tensor:
    t = target if isinstance(target, torch.Tensor) else torch.from_numpy(np.array(target))
    t = t.to(device=device, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise SamplescopeError(f"got {t.numel()} targets for a batch of {batch} inputs")
    bad = (t < 0) | (t >= n_classes)
    if bad.any():
        raise NotFoundError(
            f"target class {int(t[bad][0])} is out of range; targets must be in "
            f"[0, {n_classes - 1}]"
        )
    return t


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and autograd on, even inside a caller's ``inference_mode``/``no_grad``."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        model.train(was_training)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


# --------------------------------------------------------------------------- analyzer


class Attribution:
    """Attributions for one model, one verb: :meth:`attribute`.

    Parameters
    ----------
    model: a classifier taking (B, *input shape) and returning (B, n_outputs).
    method: ``"gradcam"``, ``"integrated_gradients"`` or ``"saliency"``.
    layer: Grad-CAM's layer (dotted name), default :func:`default_gradcam_layer`; for
        tokens the embedding layer, default :func:`default_embedding_layer`.
    n_steps: Integrated Gradients' number of steps.
    input_kind: ``"image"`` (C, H, W), ``"vector"`` (F,) or ``"tokens"`` (T,) ids.
    baseline: Integrated Gradients' baseline for an image or vector input (one input's
        shape); default all zeros.

    Attributes (after the first :meth:`attribute`)
    ----------------------------------------------
    n_classes_: number of logits the model returns.
    """

    def __init__(
        self,
        model: nn.Module,
        method: Literal["gradcam", "integrated_gradients", "saliency"],
        layer: str | None = None,
        n_steps: int = 50,
        input_kind: Literal["image", "vector", "tokens"] = "image",
        baseline: np.ndarray | torch.Tensor | None = None,
    ):
        self.model = model
        self.method = method
        self.layer = layer
        self.n_steps = n_steps
        self.input_kind = input_kind
        self.baseline = baseline

    def _explainer(self) -> Any:
        """The Captum object, built once per (method, layer, input kind)."""
        from captum.attr import (
            IntegratedGradients,
            LayerGradCam,
            LayerIntegratedGradients,
            Saliency,
        )

        key = (self.method, self.layer, self.input_kind)
        cached: tuple[tuple[str, str | None, str], Any] | None = getattr(self, "_cached", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        if self.method not in ATTRIBUTION_METHODS:
            raise ParameterError(
                f"attribution method {self.method!r} is unknown; use one of {', '.join(ATTRIBUTION_METHODS)}"
            )
        if self.input_kind not in _SHAPES:
            raise ParameterError(f"input_kind={self.input_kind!r} is not one of {', '.join(_SHAPES)}")
        why = applicable_methods(self.input_kind, self.model, self.layer)[self.method]
        if why is not None:
            usable = [METHOD_NAMES[m] for m, r in applicable_methods(self.input_kind, self.model, self.layer).items()
                      if r is None]
            raise ParameterError(
                f"{METHOD_NAMES[self.method]} does not apply to {type(self.model).__name__} on {self.input_kind} "
                f"inputs: {why}; use {' or '.join(usable)}"
            )
        if self.method == "gradcam":
            layer = self.layer or default_gradcam_layer(self.model)
            explainer: Any = LayerGradCam(self.model, _get_layer(self.model, layer))
        elif self.input_kind == "tokens":
            layer = self.layer or default_embedding_layer(self.model)
            explainer = LayerIntegratedGradients(self.model, _get_layer(self.model, layer))
        elif self.method == "integrated_gradients":
            explainer = IntegratedGradients(self.model)
        else:
            explainer = Saliency(self.model)
        self._cached = (key, explainer)
        return explainer

    def attribute(self, x: np.ndarray | torch.Tensor, target: Targets) -> np.ndarray:
        """Attribution(s) for ``target``, one sample or a batch of them.

        Images: (C, H, W) -> (H, W); (B, C, H, W) -> (B, H, W). Vectors: (F,) -> (F,);
        (B, F) -> (B, F). Tokens: (T,) -> (T,); (B, T) -> (B, T).
        ``target`` is one class index for all inputs, or one per input.
        """
        from captum.attr import LayerAttribution

        explainer = self._explainer()
        device = _model_device(self.model)
        kind = self.input_kind
        with _eval_mode(self.model):
            inputs, single = _as_batch(x, device, kind, f"Attribution({self.method!r}).attribute()")
            if kind == "tokens":
                inputs = inputs.detach()  # ids: the gradient is taken at the embedding
            if not hasattr(self, "n_classes_"):
                self.n_classes_ = _n_classes(self.model, inputs)
            targets = _targets(target, len(inputs), self.n_classes_, device)
            if self.method == "gradcam":
                cam = explainer.attribute(inputs, target=targets, relu_attributions=True)
                out = LayerAttribution.interpolate(cam, inputs.shape[-2:], "bilinear")[:, 0]
            elif self.method == "integrated_gradients":
                attr = explainer.attribute(
                    inputs,
                    baselines=self._baselines(inputs),
                    target=targets,
                    n_steps=self.n_steps,
                    method="gausslegendre",
                )
                # image: sum over channels (B, H, W); tokens: over the embedding (B, T); vector as is (B, F)
                out = attr.sum(dim=1) if kind == "image" else attr.sum(dim=-1) if kind == "tokens" else attr
            else:
                out = explainer.attribute(inputs, target=targets, abs=True)
                out = out.amax(dim=1) if kind == "image" else out
        heat = out.detach().cpu().numpy().astype(np.float32)
        return heat[0] if single else heat

    def _baselines(self, inputs: torch.Tensor) -> torch.Tensor:
        """Integrated Gradients' starting point: zeros (padding ids for tokens) or the given baseline."""
        if self.baseline is None or self.input_kind == "tokens":
            return torch.zeros_like(inputs)
        b = torch.as_tensor(np.asarray(self.baseline, dtype=np.float32)).to(inputs.device)
        if tuple(b.shape) != tuple(inputs.shape[1:]):
            raise ParameterError(
                f"Attribution baseline has shape {tuple(b.shape)}; it must be one input's shape "
                f"{tuple(inputs.shape[1:])}"
            )
        return b.expand_as(inputs).contiguous()


def gradcam_batch(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    targets: Targets,
    layer: str | None = None,
    batch_size: int = 512,
) -> np.ndarray:
    """Grad-CAM maps for many inputs: targets (B,) -> (B, H, W); targets (B, T) -> (B, T, H, W).

    The same maps as ``Attribution(model, "gradcam", layer).attribute(x, targets)``
    (the tests check it against Captum's ``LayerGradCam``), computed for
    precomputing a whole dataset: ``batch_size`` inputs per forward pass, one
    forward pass shared by all T targets of an input (e.g. predicted and true
    class), and a target equal to an earlier one of the same input (a correct
    prediction) copied instead of recomputed.
    """
    from captum.attr import LayerAttribution

    layer = layer or default_gradcam_layer(model)
    module = _get_layer(model, layer)
    device = _model_device(model)
    n = len(x)
    wanted = np.asarray(targets, dtype=np.int64)
    single = wanted.ndim <= 1
    if wanted.ndim == 0 or (single and wanted.size == 1):
        wanted = np.full((n, 1), int(wanted.reshape(-1)[0]))
    elif single:
        wanted = wanted[:, None]
    if wanted.ndim != 2 or len(wanted) != n:
        raise SamplescopeError(
            f"targets must be one class, (B,) or (B, T) for B={n} inputs, "
            f"got shape {np.shape(targets)}"
        )
    out: np.ndarray | None = None
    acts: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, output: acts.append(output))
    try:
        with _eval_mode(model):
            for start in range(0, n, batch_size):
                inputs, _ = _as_batch(x[start : start + batch_size], device)  # (B, C, H, W)
                acts.clear()
                logits = model(inputs)  # (B, n_classes)
                act = acts[0]  # (B, K, h, w)
                chunk = wanted[start : start + len(inputs)]
                t = _targets(chunk, chunk.size, logits.shape[-1], device).reshape(chunk.shape)
                cams = torch.zeros((len(inputs), t.shape[1], *act.shape[2:]), device=device)
                for j in range(t.shape[1]):
                    same = [t[:, j] == t[:, i] for i in range(j)]
                    need = torch.ones(len(t), dtype=torch.bool, device=device)
                    for earlier in same:
                        need &= ~earlier  # rows whose target j is new
                    if need.any():
                        score = logits.gather(1, t[:, j : j + 1])[need].sum()
                        (grad,) = torch.autograd.grad(score, act, retain_graph=True)
                        weights = grad.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
                        cam = torch.relu((weights * act).sum(dim=1))  # (B, h, w)
                        cams[need, j] = cam[need].detach()
                    for i in range(j):  # repeated targets: copy the earlier map
                        cams[same[i] & ~need, j] = cams[same[i] & ~need, i]
                        need = need | same[i]
                up = LayerAttribution.interpolate(cams, inputs.shape[-2:], "bilinear")
                part = up.cpu().numpy().astype(np.float32)  # (B, T, H, W)
                if out is None:
                    out = np.empty((n, *part.shape[1:]), dtype=np.float32)
                out[start : start + len(part)] = part
    finally:
        handle.remove()
    if out is None:
        raise SamplescopeError("gradcam_batch got an empty batch")
    return out[:, 0] if single else out

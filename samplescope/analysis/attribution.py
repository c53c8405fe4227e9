"""Which input pixels drove a prediction: Grad-CAM, Integrated Gradients, saliency.

    attr = Attribution(model, "gradcam")
    heat = attr.attribute(image, target=3)            # (C, H, W) -> (H, W) float32
    heats = gradcam_batch(model, images, targets)     # (B, C, H, W) -> (B, H, W)

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

from samplescope.errors import NotFoundError, SamplescopeError

logger = logging.getLogger(__name__)

__all__ = ["ATTRIBUTION_METHODS", "Attribution", "default_gradcam_layer", "gradcam_batch"]

ATTRIBUTION_METHODS: tuple[str, ...] = ("gradcam", "integrated_gradients", "saliency")

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
        raise SamplescopeError(
            f"{type(model).__name__} has no nn.Conv2d for Grad-CAM; pass layer=... or set a "
            "`gradcam_layer` attribute on the model"
        )
    return convs[-1]


def _get_layer(model: nn.Module, layer: str) -> nn.Module:
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        names = [n for n in modules if n]
        raise NotFoundError(
            f"layer {layer!r} is not a submodule of {type(model).__name__}; "
            f"valid layer names: {', '.join(names) or '(none)'}"
        )
    return modules[layer]


def _as_batch(x: np.ndarray | torch.Tensor, device: torch.device) -> tuple[torch.Tensor, bool]:
    """A fresh float32 (B, C, H, W) tensor, and whether the input was a single (C, H, W)."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x, dtype=np.float32))
    single = t.ndim == 3
    if single:
        t = t.unsqueeze(0)
    if t.ndim != 4:
        raise SamplescopeError(
            f"attribution input must be (C, H, W) or (B, C, H, W), got shape {tuple(t.shape)}"
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
    """Per-pixel attribution maps for one model, one verb: :meth:`attribute`.

    Parameters
    ----------
    model: a classifier taking (B, C, H, W) and returning (B, n_classes) logits.
    method: ``"gradcam"``, ``"integrated_gradients"`` or ``"saliency"``.
    layer: Grad-CAM's layer (dotted name); default :func:`default_gradcam_layer`.
    n_steps: Integrated Gradients' number of steps.

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
    ):
        self.model = model
        self.method = method
        self.layer = layer
        self.n_steps = n_steps

    def _explainer(self) -> Any:
        """The Captum object, built once per (method, layer)."""
        from captum.attr import IntegratedGradients, LayerGradCam, Saliency

        key = (self.method, self.layer)
        cached: tuple[tuple[str, str | None], Any] | None = getattr(self, "_cached", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        if self.method == "gradcam":
            layer = self.layer or default_gradcam_layer(self.model)
            explainer: Any = LayerGradCam(self.model, _get_layer(self.model, layer))
        elif self.method == "integrated_gradients":
            explainer = IntegratedGradients(self.model)
        elif self.method == "saliency":
            explainer = Saliency(self.model)
        else:
            raise SamplescopeError(
                f"attribution method {self.method!r} is unknown; use one of "
                f"{', '.join(ATTRIBUTION_METHODS)}"
            )
        self._cached = (key, explainer)
        return explainer

    def attribute(self, x: np.ndarray | torch.Tensor, target: Targets) -> np.ndarray:
        """Attribution map(s) for ``target``: (C, H, W) -> (H, W); (B, C, H, W) -> (B, H, W).

        ``target`` is one class index for all inputs, or one per input.
        """
        from captum.attr import LayerAttribution

        explainer = self._explainer()
        device = _model_device(self.model)
        with _eval_mode(self.model):
            inputs, single = _as_batch(x, device)  # (B, C, H, W)
            if not hasattr(self, "n_classes_"):
                self.n_classes_ = _n_classes(self.model, inputs)
            targets = _targets(target, len(inputs), self.n_classes_, device)
            if self.method == "gradcam":
                cam = explainer.attribute(inputs, target=targets, relu_attributions=True)
                out = LayerAttribution.interpolate(cam, inputs.shape[-2:], "bilinear")[:, 0]
            elif self.method == "integrated_gradients":
                attr = explainer.attribute(
                    inputs,
                    baselines=torch.zeros_like(inputs),
                    target=targets,
                    n_steps=self.n_steps,
                    method="gausslegendre",
                )
                out = attr.sum(dim=1)
            else:
                out = explainer.attribute(inputs, target=targets, abs=True).amax(dim=1)
        heat = out.detach().cpu().numpy().astype(np.float32)  # (B, H, W)
        return heat[0] if single else heat


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

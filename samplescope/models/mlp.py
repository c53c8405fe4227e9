"""A small multilayer perceptron for vectors (tabular features).

``standardize -> (Linear -> ReLU -> Dropout) x len(hidden) -> classifier``. With
``MLPConfig(in_features=30, num_classes=2)``::

    x (B, 30) raw features
      normalize       fixed (x - mean) / std per feature, part of the model
      layers.0-2      linear 64, ReLU, dropout   (B, 64)
      layers.3-5      linear 32, ReLU, dropout   (B, 32)    <- the latent: input of `classifier`
      classifier      linear                      (B, 2)     outputs (logits, or values for regression)

The standardisation constants are persistent buffers, so they travel in the
weights file (``model.safetensors``) and ``model(x)`` on raw features is the whole
story: set them from the training inputs with :meth:`MLP.fit_normalization` (the
training pipeline does) before training. The config stays small (no per-feature
numbers), so ``run.json`` can rebuild the class from it.

No in-place ops, so Captum's hooks and gradients work on every layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class MLPConfig:
    in_features: int
    num_classes: int = 2  # outputs of the last layer (classes, labels or regression targets)
    hidden: tuple[int, ...] = (64, 32)  # widths of the hidden Linear-ReLU layers; the last is the latent
    dropout: float = 0.1  # after every hidden ReLU

    def __post_init__(self) -> None:
        # run.json stores lists; keep the dataclass hashable and comparable
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))


class Standardize(nn.Module):
    """(x - mean) / std per feature; constants are buffers saved with the weights (not trained)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MLP(nn.Module):
    #: dotted module name of the latent layer: its *input* is the sample's embedding
    latent_layer: str = "classifier"
    #: no convolution, so no Grad-CAM (attribution.py says so to the user)
    gradcam_layer: str | None = None

    def __init__(self, config: MLPConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = MLPConfig(**kwargs)
        elif kwargs:
            raise TypeError(f"MLP takes a config or keyword arguments, not both (got {sorted(kwargs)})")
        if config.in_features < 1:
            raise ValueError(f"MLPConfig.in_features must be >= 1, got {config.in_features}")
        if config.num_classes < 1:
            raise ValueError(f"MLPConfig.num_classes must be >= 1, got {config.num_classes}")
        if any(h < 1 for h in config.hidden):
            raise ValueError(f"MLPConfig.hidden widths must be >= 1, got {config.hidden!r}")
        self.config = config
        self.normalize = Standardize(config.in_features)
        layers: list[nn.Module] = []
        width = config.in_features
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=False), nn.Dropout(config.dropout)]
            width = h
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, config.num_classes)

    @property
    def latent_dim(self) -> int:
        return self.classifier.in_features

    @torch.no_grad()
    def fit_normalization(self, x: np.ndarray | torch.Tensor) -> MLP:
        """Set the per-feature mean and std from training inputs ``x`` (N, in_features).

        A constant feature gets std 1 (it is only centred), so it never divides by zero.
        """
        t = torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(len(x), -1)
        if t.shape[1] != self.config.in_features:
            raise ValueError(
                f"MLP.fit_normalization: inputs have {t.shape[1]} features, the model takes "
                f"{self.config.in_features}"
            )
        mean = t.mean(0)
        std = t.std(0, unbiased=False)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        self.normalize.mean.copy_(mean.float())
        self.normalize.std.copy_(std.float())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x.flatten(1))  # (B, in_features)
        x = self.layers(x)  # (B, latent_dim)
        return self.classifier(x)  # (B, num_classes)

"""A small, fast convolutional classifier for 28x28-ish grey images (MNIST).

Three stages of two ``conv3x3 -> BatchNorm -> ReLU``; in the first two stages a 2x2
max-pool follows the second conv, before its BatchNorm and ReLU (a quarter of their
work on a CPU). The last feature map is average-pooled to 3x3 and flattened, then one
``nn.Linear`` named ``classifier``. With the default config (77,786 parameters)::

    x (B, 1, 28, 28) in [0, 1]
      normalize                    fixed affine (x - mean) / std, part of the model
      features.0-6    conv 16 x2   (B, 16, 14, 14)
      features.7-13   conv 32 x2   (B, 32, 7, 7)
      features.14-19  conv 64 x2   (B, 64, 7, 7)    <- gradcam_layer = "features.17"
      pool, flatten                (B, 576)         <- the latent: input of `classifier`
      classifier      linear       (B, 10)          logits

Everything is a plain module with no in-place ops, so Captum's hooks and
gradients work on any layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class CNNConfig:
    in_channels: int = 1
    num_classes: int = 10
    input_size: int = 28  # height == width of the input images
    channels: tuple[int, ...] = (16, 32, 64)  # one stage each, 2x2 max-pool between stages
    convs_per_stage: int = 2
    kernel_size: int = 3
    pool_size: int = 3  # the last feature map is average-pooled to pool_size x pool_size
    hidden: int = 0  # width of a Linear-ReLU layer before the classifier; 0 = none
    dropout: float = 0.0  # before the classifier
    # fixed input normalisation inside the model, so model(x) with x in [0, 1] is the whole story
    input_mean: float = 0.1307
    input_std: float = 0.3081


class Normalize(nn.Module):
    """(x - mean) / std with fixed (non-trained) constants."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean), persistent=False)
        self.register_buffer("std", torch.tensor(std), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SmallCNN(nn.Module):
    #: dotted module name of the latent layer: its *input* is the sample's embedding
    latent_layer: str = "classifier"

    def __init__(self, config: CNNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or CNNConfig()
        if not config.channels:
            raise ValueError("CNNConfig.channels must name at least one stage, got ()")
        size = config.input_size
        if size >> (len(config.channels) - 1) < 1:
            raise ValueError(
                f"input_size={size} is too small for {len(config.channels)} stages "
                f"(each stage after the first halves it); use fewer channels entries"
            )

        layers: list[nn.Module] = []
        in_ch = config.in_channels
        last_stage = len(config.channels) - 1
        for i, out_ch in enumerate(config.channels):
            for j in range(config.convs_per_stage):
                self._last_conv = len(layers)
                pad = config.kernel_size // 2
                # no conv bias: the BatchNorm that follows has its own
                layers.append(nn.Conv2d(in_ch, out_ch, config.kernel_size, padding=pad, bias=False))
                if i < last_stage and j == config.convs_per_stage - 1:
                    # pool before BatchNorm and ReLU: 4x less elementwise work (see top)
                    layers.append(nn.MaxPool2d(2))
                layers.append(nn.BatchNorm2d(out_ch))
                layers.append(nn.ReLU(inplace=False))
                in_ch = out_ch
        self.normalize = Normalize(config.input_mean, config.input_std)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(config.pool_size)
        self.flatten = nn.Flatten()
        latent = in_ch * config.pool_size**2
        if config.hidden:
            self.hidden = nn.Sequential(nn.Linear(latent, config.hidden), nn.ReLU(inplace=False))
            latent = config.hidden
        else:
            self.hidden = nn.Identity()
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(latent, config.num_classes)

    @property
    def gradcam_layer(self) -> str:
        """Dotted module name of the last conv layer (for Grad-CAM)."""
        return f"features.{self._last_conv}"

    @property
    def latent_dim(self) -> int:
        return self.classifier.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)  # (B, C, H, W)
        x = self.features(x)  # (B, C', H', W')
        x = self.hidden(self.flatten(self.pool(x)))  # (B, latent_dim)
        return self.classifier(self.dropout(x))  # (B, num_classes) logits


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

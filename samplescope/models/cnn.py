"""A small, fast convolutional classifier for 28x28-ish grey images (MNIST).

Stages of ``conv3x3 -> BatchNorm -> ReLU``; in every stage but the last a 2x2
max-pool follows the stage's last conv, before its BatchNorm and ReLU (a quarter of
their work on a CPU). The last feature map is average-pooled (globally, by default)
and flattened, then one ``nn.Linear`` named ``classifier``. With the default config
(70,330 parameters, 5.5M multiply-adds per 28x28 image)::

    x (B, 1, 28, 28) in [0, 1]
      normalize                    fixed affine (x - mean) / std, part of the model
      features.0-3    conv 16      (B, 16, 14, 14)
      features.4-10   conv 32 x2   (B, 32, 7, 7)
      features.11-16  conv 64 x2   (B, 64, 7, 7)    <- gradcam_layer = "features.14"
      pool, flatten                (B, 64)          <- the latent: input of `classifier`
      classifier      linear       (B, 10)          logits

Why this shape: on a 2-core CPU the 28x28 stage costs the most per channel, so it
gets one conv; dropping its second conv halves inference time against two convs in
every stage, at the same accuracy (99.57% and 99.63% for seeds 0 and 1, 8 epochs).
Global pooling keeps the latent at 64 values, so a similars query scans 18 MB for
70,000 samples, not the 161 MB a 3x3-pooled 576-value latent costs
(`bench/analyze_speed.py`).

The training recipes (samplescope/train/recipes.py) build smaller shapes from the
same config: ``first_stride=2`` makes the first conv halve the image in place of the
first stage's max-pool (a third of this model's time went to that 28x28 stage; the
same accuracy for 18% less time), ``bn_momentum`` tunes BatchNorm for short
schedules. The measurements behind them: docs/training.md.

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
    input_size: int = 28  # the smaller side of the input images (any H x W works: the pooling adapts)
    channels: tuple[int, ...] = (16, 32, 64)  # one stage each, 2x2 max-pool between stages
    # convs per stage: one count for all, one per stage, or None = 1 in the first, 2 in the others
    convs_per_stage: int | tuple[int, ...] | None = None
    kernel_size: int = 3
    # stride of the very first conv: 2 halves the input there, in place of the first stage's max-pool
    first_stride: int = 1
    first_kernel: int | None = None  # kernel size of the very first conv; None = kernel_size
    bn_momentum: float = 0.1  # BatchNorm running-statistics momentum (torch's default 0.1)
    pool_size: int = 1  # the last feature map is average-pooled to pool_size x pool_size
    hidden: int = 0  # width of a Linear-ReLU layer before the classifier; 0 = none
    dropout: float = 0.0  # before the classifier
    # fixed input normalisation inside the model, so model(x) with x in [0, 1] is the whole story:
    # one value for every channel, or one per channel (colour images; train sets them from the data)
    input_mean: float | tuple[float, ...] = 0.1307
    input_std: float | tuple[float, ...] = 0.3081

    def __post_init__(self) -> None:
        for name in ("input_mean", "input_std"):  # run.json stores lists
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                if len(value) != self.in_channels:
                    raise ValueError(
                        f"CNNConfig.{name} has {len(value)} values for {self.in_channels} channels; "
                        "give one value, or one per channel"
                    )
                object.__setattr__(self, name, tuple(float(v) for v in value))


class Normalize(nn.Module):
    """(x - mean) / std with fixed (non-trained) constants, one for all channels or one per channel."""

    def __init__(self, mean: float | tuple[float, ...], std: float | tuple[float, ...]) -> None:
        super().__init__()
        shape = (-1, 1, 1) if isinstance(mean, (tuple, list)) else ()  # (C, 1, 1) broadcasts over (B, C, H, W)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(shape), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(shape), persistent=False)

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

        convs = config.convs_per_stage
        stages = len(config.channels)
        if convs is None:
            convs = (1,) + (2,) * (stages - 1)
        convs = tuple(convs) if isinstance(convs, (tuple, list)) else (convs,) * stages
        if len(convs) != stages or min(convs) < 1:
            raise ValueError(
                f"CNNConfig.convs_per_stage must be one count >= 1 or one per stage "
                f"({stages} stages), got {config.convs_per_stage!r}"
            )
        if config.first_stride not in (1, 2):
            raise ValueError(f"CNNConfig.first_stride must be 1 or 2, got {config.first_stride!r}")
        layers: list[nn.Module] = []
        in_ch = config.in_channels
        last_stage = stages - 1
        for i, out_ch in enumerate(config.channels):
            for j in range(convs[i]):
                self._last_conv = len(layers)
                first = not layers
                kernel = (config.first_kernel or config.kernel_size) if first else config.kernel_size
                stride = config.first_stride if first else 1
                # no conv bias: the BatchNorm that follows has its own
                layers.append(
                    nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False)
                )
                strided_stage = i == 0 and config.first_stride > 1
                if i < last_stage and j == convs[i] - 1 and not strided_stage:
                    # pool before BatchNorm and ReLU: 4x less elementwise work (see top)
                    layers.append(nn.MaxPool2d(2))
                layers.append(nn.BatchNorm2d(out_ch, momentum=config.bn_momentum))
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

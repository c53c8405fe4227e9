"""The model `samplescope train` builds for an input kind, and the training settings that suit it.

=========  =====================  ===============================================
input      default model          why
=========  =====================  ===============================================
image      ``cnn`` (SmallCNN)      any channel count and size (28x56, 32x32x3...);
                                   the recipe's shape; per-channel normalisation
vector     ``mlp`` (MLP)           per-feature standardisation set from train
tokens     ``tokens``              embedding, mean pooling, linear
=========  =====================  ===============================================

``--model cnn|mlp|tokens`` overrides the choice where it makes sense (``mlp`` on
images flattens them; ``cnn`` needs (C, H, W) inputs).

The recipes (samplescope/train/recipes.py) were tuned on 60,000 MNIST images:
batch 256 for 5 epochs is ~1,200 steps there but a handful on a 500-row table, so
for vectors and tokens :func:`train_overrides` asks for about 300 optimizer steps
at batch 32 (epochs from the train size, 10 at least), no image shifts and no weight
EMA. On breast_cancer (455 train rows, 21 epochs) seeds 0-2 reach 94.7-96.5% validation
accuracy at 10, 20 or 50 epochs alike (logistic regression on standardised features: 98.2%).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from samplescope.errors import ParameterError

MODEL_CHOICES: tuple[str, ...] = ("auto", "cnn", "mlp", "tokens")
DEFAULT_FOR_KIND = {"image": "cnn", "vector": "mlp", "tokens": "tokens"}


def choose(kind: str, choice: str = "auto") -> str:
    """The model name for input ``kind``: ``choice`` unless it is ``auto``; refuses what cannot work."""
    if choice not in MODEL_CHOICES:
        raise ParameterError(f"model={choice!r} is not one of {', '.join(MODEL_CHOICES)} (e.g. --model mlp).")
    name = DEFAULT_FOR_KIND[kind] if choice == "auto" else choice
    if name == "cnn" and kind != "image":
        raise ParameterError(
            f"--model cnn takes (C, H, W) images and this integration's input is a {kind}; use --model "
            f"{DEFAULT_FOR_KIND[kind]} (or leave --model out)."
        )
    if (name == "tokens") != (kind == "tokens"):
        raise ParameterError(
            f"--model {name} does not fit {kind} inputs; use --model {DEFAULT_FOR_KIND[kind]} (or leave --model out)."
        )
    return name


def build(
    name: str, x_train: np.ndarray, n_outputs: int, recipe_model: dict[str, Any], vocabulary: list[str] | None = None
) -> tuple[Any, Any]:
    """(model, config) for model ``name`` fitted to the training inputs' shape (and statistics)."""
    if name == "cnn":
        from samplescope.models.cnn import CNNConfig, SmallCNN

        c, h, w = x_train.shape[1:]
        norm: dict[str, Any] = {}
        if c > 1:  # colour: per-channel statistics of the training images (grey keeps MNIST's constants)
            mean, std = channel_stats(x_train)
            norm = {"input_mean": mean, "input_std": std}
        config = CNNConfig(**recipe_model, in_channels=c, num_classes=n_outputs, input_size=min(h, w), **norm)
        return SmallCNN(config), config
    if name == "mlp":
        from samplescope.models.mlp import MLP, MLPConfig

        flat = x_train.reshape(len(x_train), -1)
        config = MLPConfig(in_features=flat.shape[1], num_classes=n_outputs)
        return MLP(config).fit_normalization(flat), config
    from samplescope.models.tokens import TokenClassifier, TokenConfig

    size = len(vocabulary) if vocabulary else int(x_train.max()) + 1
    config = TokenConfig(vocab_size=max(size, 2), num_classes=n_outputs)
    return TokenClassifier(config), config


def train_overrides(kind: str, n_train: int) -> dict[str, Any]:
    """TrainConfig fields over the recipe's for non-image inputs (see the module docstring)."""
    if kind == "image":
        return {}
    batch = 32
    steps_per_epoch = max(1, n_train // batch)
    epochs = int(np.clip(round(300 / steps_per_epoch), 10, 200))
    return {"batch_size": batch, "epochs": epochs, "lr": 3e-3, "augment_shift": 0, "ema": 0.0,
            "eval_every": 0, "pct_start": 0.1, "weight_decay": 1e-4}  # fmt: skip


def channel_stats(x: np.ndarray, max_samples: int = 5000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (N, C, H, W) images (the first ``max_samples``), rounded to 4 digits."""
    part = np.asarray(x[:max_samples], dtype=np.float64)
    mean = part.mean(axis=(0, 2, 3))
    std = part.std(axis=(0, 2, 3))
    std = np.where(std > 1e-6, std, 1.0)
    return tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)

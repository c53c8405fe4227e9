"""An exponential moving average (EMA) of a model's weights, the model the loop evaluates.

Over a short one-cycle schedule the averaged weights are steadier than the last
step's: they smooth the noise of large, high-learning-rate batches. The decay
ramps up as ``min(decay, (1 + step) / (10 + step))``, so the first steps are not
averaged with the random initial weights. BatchNorm running statistics are
already averages: they are copied, not averaged.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightEMA:
    """A copy of ``model`` whose parameters trail the model's by an EMA with ``decay``."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"WeightEMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the average towards ``model``'s weights after optimizer step ``step`` (1-based)."""
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for avg, p in zip(self.model.parameters(), model.parameters(), strict=True):
            avg.lerp_(p, 1.0 - d)
        for avg, b in zip(self.model.buffers(), model.buffers(), strict=True):
            avg.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)

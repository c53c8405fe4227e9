"""Lookahead (Zhang et al., 2019): slow weights that the optimizer's fast weights are pulled back to.

Every ``k`` optimizer steps the slow weights move ``alpha`` of the way towards the fast
ones, and the fast weights restart from there; the inner optimizer (AdamW) keeps its
state. Over a short one-cycle schedule at a high peak learning rate this damps the
large early steps: the model is ahead early, so a shorter schedule suffices
(docs/training.md). BatchNorm running statistics are buffers, not weights: untouched.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Lookahead:
    """Slow copies of ``model``'s parameters, synchronised every ``k`` steps with step size ``alpha``."""

    def __init__(self, model: nn.Module, k: int, alpha: float) -> None:
        if k < 1 or not 0.0 < alpha <= 1.0:
            raise ValueError(f"Lookahead needs k >= 1 and alpha in (0, 1], got k={k}, alpha={alpha}")
        self.k, self.alpha = k, alpha
        self.slow = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """After optimizer step ``step`` (1-based): on every k-th, slow += alpha (fast - slow); fast = slow."""
        if step % self.k:
            return
        for slow, p in zip(self.slow, model.parameters(), strict=True):
            slow.lerp_(p, self.alpha)
            p.copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        return {"slow": [s.clone() for s in self.slow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["slow"]
        if len(saved) != len(self.slow):
            raise ValueError(f"Lookahead state has {len(saved)} tensors for {len(self.slow)} parameters")
        for slow, s in zip(self.slow, saved, strict=True):
            slow.copy_(s)

"""Training: one loop, callbacks, checkpoints, history, recipes.

Names are imported on first use (PEP 562), so ``samplescope.train.recipes`` can be
read (the CLI's ``--recipe`` choices) without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Callback": "callbacks", "HistoryLogger": "callbacks", "ProgressBar": "callbacks",
    "Checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "History": "loop", "TrainConfig": "loop", "TrainState": "loop", "evaluate": "loop",
    "random_shift": "loop", "train": "loop",
    "WeightEMA": "ema",
    "RECIPES": "recipes", "Recipe": "recipes", "get_recipe": "recipes",
}  # fmt: skip

__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'samplescope.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"samplescope.train.{_WHERE[name]}"), name)

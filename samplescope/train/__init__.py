"""Training: one loop, callbacks, checkpoints, history."""

from samplescope.train.callbacks import Callback, HistoryLogger, ProgressBar
from samplescope.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from samplescope.train.loop import History, TrainConfig, TrainState, evaluate, random_shift, train

__all__ = [
    "Callback",
    "Checkpoint",
    "History",
    "HistoryLogger",
    "ProgressBar",
    "TrainConfig",
    "TrainState",
    "evaluate",
    "load_checkpoint",
    "random_shift",
    "save_checkpoint",
    "train",
]

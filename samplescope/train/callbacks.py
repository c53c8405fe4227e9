"""Callbacks: hooks the training loop calls; a subclass overrides the ones it needs.

The loop calls every hook on every callback in order and never checks types
(Lightning-style). Each hook gets the live :class:`~samplescope.train.loop.TrainState`;
``on_eval_end`` (after every evaluation: every ``eval_every`` steps and at each
epoch end) and ``on_epoch_end`` also get the history row just recorded.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

if TYPE_CHECKING:
    from samplescope.train.loop import TrainState

log = logging.getLogger(__name__)


class Callback:
    """Base class with empty hooks."""

    def on_train_start(self, state: TrainState) -> None:
        pass

    def on_step_end(self, state: TrainState) -> None:
        pass

    def on_eval_end(self, state: TrainState, row: dict[str, Any]) -> None:
        pass

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        pass

    def on_train_end(self, state: TrainState) -> None:
        pass


class ProgressBar(Callback):
    """A tqdm bar over all optimisation steps, with epoch, loss, accuracy live (stderr)."""

    def __init__(self, disable: bool = False, refresh_every: int = 10) -> None:
        self.disable = disable
        self.refresh_every = refresh_every
        self._bar: Any = None
        self._val_acc: float | None = None

    def on_train_start(self, state: TrainState) -> None:
        self._bar = tqdm(
            total=state.total_steps,
            initial=state.step,  # non-zero when resuming
            desc="train",
            unit="step",
            file=sys.stderr,
            disable=self.disable,
            dynamic_ncols=True,
        )

    def on_step_end(self, state: TrainState) -> None:
        self._bar.update(1)
        if state.step % self.refresh_every == 0 or state.step == state.total_steps:
            self._set_postfix(state)

    def on_eval_end(self, state: TrainState, row: dict[str, Any]) -> None:
        self._val_acc = row["val_acc"]
        self._set_postfix(state)

    def on_train_end(self, state: TrainState) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _set_postfix(self, state: TrainState) -> None:
        postfix = {
            "epoch": f"{state.epoch + 1}/{state.epochs}",
            "loss": f"{state.running_loss:.4f}",
            "acc": f"{state.running_acc:.4f}",
        }
        if self._val_acc is not None:
            postfix["val_acc"] = f"{self._val_acc:.4f}"
        self._bar.set_postfix(postfix, refresh=False)


class HistoryLogger(Callback):
    """Log each history row (at INFO) and optionally append it to a JSON-lines file."""

    def __init__(self, path: str | Path | None = None, level: int = logging.INFO) -> None:
        self.path = Path(path) if path is not None else None
        self.level = level

    def on_eval_end(self, state: TrainState, row: dict[str, Any]) -> None:
        log.log(
            self.level,
            "%s epoch=%d step=%d train_loss=%.4f train_acc=%.4f val_loss=%.4f val_acc=%.4f "
            "lr=%.2e elapsed_s=%.1f",
            row["kind"], row["epoch"], row["step"], row["train_loss"], row["train_acc"],
            row["val_loss"], row["val_acc"], row["lr"], row["elapsed_s"],
        )  # fmt: skip
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")

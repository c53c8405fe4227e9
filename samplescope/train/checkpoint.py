"""Checkpoints: everything needed to continue a run exactly where it stopped.

At each epoch end :class:`Checkpoint` writes ``checkpoint_dir/checkpoint.pt``
atomically (a temporary file, then ``os.replace``): model, optimizer and
scheduler state, epoch and step, the RNG states (global torch RNG and the loop's
generator), the history so far, the configs and a description of the data.
:func:`load_checkpoint` refuses a checkpoint written by a different model,
config or dataset, naming what differs, so a resumed run ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from samplescope.errors import CheckpointError
from samplescope.store import layout
from samplescope.train.callbacks import Callback

if TYPE_CHECKING:
    from samplescope.train.loop import TrainState

CHECKPOINT_NAME = layout.CHECKPOINT
FORMAT_VERSION = 2  # 2: samplescope's AdamW and OneCycle state (train/optim.py), not torch.optim's


def checkpoint_path(checkpoint_dir: str | Path) -> Path:
    return Path(checkpoint_dir) / CHECKPOINT_NAME


def describe_model(model: nn.Module) -> dict[str, Any]:
    """What a checkpoint's model must match: class, config (if a dataclass), parameter shapes."""
    config = getattr(model, "config", None)
    return {
        "class": type(model).__qualname__,
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None,
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
    }


class Checkpoint(Callback):
    """Save the run at every epoch end (``train(checkpoint_dir=...)`` adds this)."""

    def __init__(self, checkpoint_dir: str | Path) -> None:
        self.path = checkpoint_path(checkpoint_dir)

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        save_checkpoint(self.path, state)


def save_checkpoint(path: str | Path, state: TrainState) -> None:
    path = Path(path)
    payload = {
        "format_version": FORMAT_VERSION,
        "model_info": describe_model(state.model),
        "train_config": dataclasses.asdict(state.config),
        "data_info": state.data_info,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "ema": state.ema.state_dict() if state.ema is not None else None,
        "lookahead": state.lookahead.state_dict() if state.lookahead is not None else None,
        "epochs_done": state.epoch + 1,  # saved at the end of epoch `state.epoch` (0-based)
        "step": state.step,
        "elapsed_s": state.elapsed_s,
        "rng": {"torch": torch.get_rng_state(), "generator": state.generator.get_state()},
        "history": state.history.to_rows(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a crash mid-save leaves the previous checkpoint intact


def load_checkpoint(checkpoint_dir: str | Path | None, state: TrainState) -> None:
    """Restore ``state`` (model, optimizer, scheduler, RNGs, counters, history) in place."""
    from samplescope.train.loop import RESUME_FIELDS, History

    if checkpoint_dir is None:
        raise CheckpointError(
            "resume=True needs checkpoint_dir: pass the folder holding checkpoint.pt "
            "from the run to continue"
        )
    path = checkpoint_path(checkpoint_dir)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint to resume from: {path} does not exist. Pass the checkpoint_dir "
            f"of the interrupted run, or train without resume=True to start a new run"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated or not a checkpoint at all
        raise CheckpointError(
            f"cannot read checkpoint {path}: {e}. Delete it to start a new run"
        ) from e
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is not a samplescope checkpoint (format {FORMAT_VERSION}). "
            f"Delete it, or choose another checkpoint_dir, to start a new run"
        )

    # --- does it belong to this run? -----------------------------------------
    diffs: list[str] = []

    def compare(what: str, saved: Any, current: Any) -> None:
        if saved != current:
            diffs.append(f"{what}: checkpoint has {saved!r}, this run has {current!r}")

    saved_model, model_info = payload["model_info"], describe_model(state.model)
    compare("model class", saved_model["class"], model_info["class"])
    if saved_model["config"] is not None and model_info["config"] is not None:
        for key in sorted(set(saved_model["config"]) | set(model_info["config"])):
            compare(f"model config {key}", saved_model["config"].get(key),
                    model_info["config"].get(key))  # fmt: skip
    if not diffs and saved_model["shapes"] != model_info["shapes"]:
        diffs.append("model parameter names or shapes differ")
    current_config = dataclasses.asdict(state.config)
    for key in RESUME_FIELDS:  # a field newer than the checkpoint held its default then
        saved = payload["train_config"].get(key, type(state.config).__dataclass_fields__[key].default)
        compare(f"train config {key}", saved, current_config[key])
    for key, value in state.data_info.items():
        compare(f"training data {key}", payload["data_info"].get(key), value)
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} does not match this run: "
            + "; ".join(diffs)
            + ". Resume with the same model, config and data, or train without resume=True "
            "(or with another checkpoint_dir) to start a new run"
        )

    # --- restore --------------------------------------------------------------
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.scheduler.load_state_dict(payload["scheduler"])
    if state.ema is not None:  # config.ema matched above, so the checkpoint holds an average
        state.ema.load_state_dict(payload.get("ema") or {})
    if state.lookahead is not None:  # config.lookahead matched above, so the checkpoint holds slow weights
        state.lookahead.load_state_dict(payload.get("lookahead") or {"slow": []})
    torch.set_rng_state(payload["rng"]["torch"])
    state.generator.set_state(payload["rng"]["generator"])
    state.epoch = payload["epochs_done"]
    state.step = payload["step"]
    state.elapsed_s = payload["elapsed_s"]
    state.history = History(payload["history"])

"""The training loop: one function, readable top to bottom.

Data are tensors held in memory (no DataLoader): ``x`` float32 ``(N, C, H, W)``
already scaled the way the model expects (e.g. pixel / 255), ``y`` int64 ``(N,)``.
Each epoch is a permutation drawn from one ``torch.Generator`` seeded from
``config.seed``; the same generator draws the random shifts, so a run is a
pure function of (initial weights, data, config) -- and a resumed run picks up
the generator where the checkpoint left it.

    history = train(model, x_train, y_train, x_val, y_val, TrainConfig(epochs=2))
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from samplescope.cpu import (
    cores as default_threads,  # CPU cores this process may use (bench/train_speed.py too)
)
from samplescope.tasks import Classification, Task
from samplescope.train.callbacks import Callback
from samplescope.train.ema import WeightEMA
from samplescope.train.lookahead import Lookahead
from samplescope.train.optim import AdamW, OneCycle
from samplescope.train.patch_pca import patch_pca_init

log = logging.getLogger(__name__)


# -----------------------------------------------------------------------------
# config


#: rotating and scaling a tiny image (scikit-learn's 8x8 digits) by resampling blurs it
#: past recognition (the digits run's validation accuracy fell to 86%): below this size a side,
#: images get the recipe's whole-pixel shifts only
MIN_AFFINE = 16


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 8  # a fraction stops the last epoch early: 1.5 = one epoch and half of the next
    batch_size: int = 128
    lr: float = 4e-3  # peak learning rate of the one-cycle schedule
    pct_start: float = 0.25  # fraction of the steps spent warming up to `lr`
    weight_decay: float = 0.0  # AdamW (decoupled) weight decay of the conv and linear weights
    label_smoothing: float = 0.0
    ema: float = 0.0  # decay of an EMA of the weights that is evaluated and kept at the end; 0 = off
    lookahead: int = 0  # Lookahead: every this many steps pull the weights back towards slow copies; 0 = off
    lookahead_alpha: float = 0.5  # how far the slow weights move towards the fast ones at each of those steps
    augment_shift: int = 2  # shift each training image by up to this many pixels; 0 = off
    # rotate each training image by up to this many degrees and scale it by up to 1 +- augment_scale
    # (bilinear, zero fill, with the shift in the same resampling); 0 and 0 = off: shifts only
    augment_rotate: float = 0.0  # images smaller than MIN_AFFINE a side get the shifts only
    augment_scale: float = 0.0
    # fraction of the run's steps that see augmented images; the rest train on the plain images
    # (the ones validation and the analysis see) while the one-cycle schedule anneals; 1 = all
    augment_until: float = 1.0
    # the first conv's initial filters: the model's own, or the principal axes of the training images'
    # patches (train/patch_pca.py), drawn from a generator of its own seeded by `seed`
    first_conv_init: Literal["model", "patch_pca"] = "model"
    eval_every: int = 200  # steps between validation evaluations; 0 = only at epoch ends
    # validation samples a 'step' row evaluates: an evenly spaced subset (every k-th sample), the same
    # one each time, so the curve between epoch ends costs a fraction of a pass; 'epoch' rows (and so the
    # final figure) always evaluate the whole validation set; 0 = the whole set for step rows too
    eval_subset: int = 0
    eval_batch_size: int = 2000
    seed: int = 0
    threads: int | None = None  # torch threads; None = every core this process may use

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.epochs > 0:
            raise ValueError(f"TrainConfig.epochs must be > 0 (a fraction such as 1.5 is allowed), got {self.epochs}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"TrainConfig.ema must be in [0, 1) (0 = off), got {self.ema}")
        if self.lookahead < 0 or not 0.0 < self.lookahead_alpha <= 1.0:
            raise ValueError(
                f"TrainConfig.lookahead must be >= 0 steps (0 = off) and lookahead_alpha in (0, 1], "
                f"got {self.lookahead} and {self.lookahead_alpha}"
            )
        if self.augment_shift < 0 or self.eval_every < 0 or self.eval_subset < 0:
            raise ValueError("TrainConfig.augment_shift, eval_every and eval_subset must be >= 0")
        if self.first_conv_init not in ("model", "patch_pca"):
            raise ValueError(f"TrainConfig.first_conv_init must be 'model' or 'patch_pca', got {self.first_conv_init!r}")
        if not 0.0 <= self.augment_until <= 1.0:
            raise ValueError(f"TrainConfig.augment_until must be in [0, 1] (a fraction of the steps), got {self.augment_until}")
        if not (0.0 <= self.augment_rotate <= 180.0 and 0.0 <= self.augment_scale < 1.0):
            raise ValueError(
                f"TrainConfig.augment_rotate must be in [0, 180] degrees and augment_scale in [0, 1), "
                f"got {self.augment_rotate} and {self.augment_scale}"
            )


#: TrainConfig fields that change the weights a run produces: a checkpoint can only
#: be resumed with the same values. (threads, eval_every, eval_subset, eval_batch_size may differ.)
RESUME_FIELDS = (
    "epochs", "batch_size", "lr", "pct_start", "weight_decay", "label_smoothing", "ema",
    "lookahead", "lookahead_alpha", "augment_shift", "augment_rotate", "augment_scale", "augment_until", "seed",
    "first_conv_init",
)  # fmt: skip


# -----------------------------------------------------------------------------
# history and the state callbacks see

FIELDS = (
    "kind", "epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "val_samples", "lr", "elapsed_s",
)  # fmt: skip


class History:
    """Rows recorded during training, one dict per evaluation.

    Keys: ``kind`` ('step' every ``eval_every`` steps, 'epoch' at each epoch end),
    ``epoch`` (1-based epoch the row belongs to), ``step`` (optimizer steps done),
    ``train_loss`` / ``train_acc`` (mean over the steps since the previous row; plain
    cross-entropy even when training uses label smoothing, so it compares with ``val_loss``;
    other tasks: their training loss, and as ``*_acc`` their ``score_name``, e.g. regression's
    1 - MSE on standardised targets, multi-label's exact-match rate),
    ``val_loss`` / ``val_acc`` over ``val_samples`` validation samples (all of them in 'epoch' rows;
    in 'step' rows ``config.eval_subset`` evenly spaced ones when set), ``lr`` and ``elapsed_s``
    (training time, evaluation excluded).
    """

    fields = FIELDS

    def __init__(self, rows: Sequence[dict[str, Any]] = ()) -> None:
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def to_rows(self, kind: Literal["step", "epoch"] | None = None) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows if kind is None or r["kind"] == kind]

    def to_frame(self) -> Any:
        """The rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(FIELDS))

    @property
    def final(self) -> dict[str, Any]:
        """The last row (after a complete run: the last epoch's)."""
        if not self.rows:
            raise IndexError("history is empty: no evaluation has run yet")
        return dict(self.rows[-1])

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]

    def __repr__(self) -> str:
        last = f", final val_acc={self.rows[-1]['val_acc']:.4f}" if self.rows else ""
        return f"History({len(self.rows)} rows{last})"


@dataclass
class TrainState:
    """Everything the loop owns; callbacks read it (and a checkpoint saves it)."""

    model: nn.Module
    optimizer: AdamW
    scheduler: OneCycle
    generator: torch.Generator
    config: TrainConfig
    data_info: dict[str, Any]  # what a checkpoint must match: sizes, shapes, label counts
    steps_per_epoch: int
    history: History = field(default_factory=History)
    ema: WeightEMA | None = None  # the averaged weights, when config.ema > 0
    lookahead: Lookahead | None = None  # the slow weights, when config.lookahead > 0
    epoch: int = 0  # 0-based epoch being trained (at on_epoch_end: the one just finished)
    step: int = 0  # optimizer steps done
    elapsed_s: float = 0.0  # training time so far, evaluation excluded
    loss: float = math.nan  # last batch's loss
    running_loss: float = math.nan  # mean loss since the last evaluation
    running_acc: float = math.nan  # mean training accuracy since the last evaluation

    @property
    def total_steps(self) -> int:
        return total_steps(self.config, self.steps_per_epoch)

    @property
    def epochs(self) -> int:
        """Epochs the run goes through, the last one possibly cut short (``config.epochs`` rounded up)."""
        return math.ceil(self.total_steps / self.steps_per_epoch)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


# -----------------------------------------------------------------------------
# helpers


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """Optimizer steps of a whole run: ``config.epochs`` (maybe fractional) epochs, at least one step."""
    return max(1, round(config.epochs * steps_per_epoch))


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by its own random (dy, dx) in [-max_shift, max_shift], zero fill.

    Vectorised: pad the batch, then gather one H x W window per image.
    """
    B, _, H, W = x.shape  # (B, C, H, W)
    s = max_shift
    padded = F.pad(x, (s, s, s, s))  # (B, C, H + 2s, W + 2s)
    # offsets come from the CPU generator (the same draws on every device), then move to x's device
    dy = torch.randint(0, 2 * s + 1, (B, 1, 1), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * s + 1, (B, 1, 1), generator=generator).to(x.device)
    rows = dy + torch.arange(H, device=x.device).view(1, H, 1)  # (B, H, 1)
    cols = dx + torch.arange(W, device=x.device).view(1, 1, W)  # (B, 1, W)
    batch = torch.arange(B, device=x.device).view(B, 1, 1)
    out = padded[batch, :, rows, cols]  # (B, H, W, C): the advanced-index dims come first
    return out.permute(0, 3, 1, 2)  # (B, C, H, W), channels-last in memory


def random_affine(
    x: torch.Tensor, max_shift: int, max_degrees: float, max_scale: float, generator: torch.Generator
) -> torch.Tensor:
    """Rotate each image by its own angle in [-max_degrees, max_degrees], scale it by a factor in
    [1 - max_scale, 1 + max_scale] and shift it by whole pixels in [-max_shift, max_shift], in one
    bilinear resampling (zero fill). Draws come from the CPU ``generator``."""
    B, _, H, W = x.shape  # (B, C, H, W)
    angle = (torch.rand(B, generator=generator) * 2 - 1) * math.radians(max_degrees)
    scale = 1 + (torch.rand(B, generator=generator) * 2 - 1) * max_scale
    # (dx, dy) in pixels, as fractions of the [-1, 1] grid (align_corners=False: one pixel is 2 / size)
    shift = torch.randint(0, 2 * max_shift + 1, (B, 2), generator=generator).float() - max_shift
    tx, ty = shift[:, 0] * 2 / W, shift[:, 1] * 2 / H
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale  # output -> input sampling map
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@torch.inference_mode()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000, task: Task | None = None
) -> tuple[float, float]:
    """Mean loss and accuracy-like score of ``model`` on (x, y), in eval mode: the task's
    (classification: cross-entropy and accuracy)."""
    task = task or Classification()
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        xb = _fast_layout(x[i : i + batch_size])
        yb = y[i : i + batch_size]
        logits = model(xb)  # (B, num_classes)
        total_loss += task.plain_loss(logits, yb, reduction="sum").item()
        correct += task.score_sum(logits, yb).item()
    model.train(was_training)
    return total_loss / len(x), correct / len(x)


def _fast_layout(x: torch.Tensor) -> torch.Tensor:
    """Channels-last for image batches (faster convolutions on CPU); other inputs as they are."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _check_data(x: torch.Tensor, y: torch.Tensor, name: str, task: Task) -> None:
    if x.dim() not in (2, 4) or not x.is_floating_point():  # images, or vectors and token ids
        raise ValueError(
            f"x_{name} must be a float tensor (N, C, H, W), (N, F) or (N, T), got {x.dtype} {tuple(x.shape)}"
        )
    if y.dim() < 1 or len(y) != len(x):
        raise ValueError(f"y_{name} must have one row per input ({len(x)}), got {y.dtype} {tuple(y.shape)}")
    if isinstance(task, Classification) and (y.shape != (len(x),) or y.is_floating_point()):
        raise ValueError(
            f"y_{name} must be integer labels of shape ({len(x)},), got {y.dtype} {tuple(y.shape)}"
        )


# -----------------------------------------------------------------------------
# the loop


def train(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    config: TrainConfig | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    task: Task | None = None,
) -> History:
    """Train ``model`` in place with Adam(W) and a one-cycle schedule; return its History.

    With ``config.ema`` the history's validation figures are those of the averaged
    weights, and the model ends with them.

    The model's initial weights are the caller's (seed before building it for a
    reproducible run). With ``checkpoint_dir`` a checkpoint is written atomically
    at every epoch end; ``resume=True`` continues from it, ending with the same
    weights an uninterrupted run would have. ``device`` (default: where the model's
    weights are) holds the model and the whole dataset, resident, during training.

    ``task`` (default classification) gives the loss and the accuracy-like score the
    history records: ``y`` is then what :meth:`Task.training_targets` makes (regression:
    float standardised targets, multi-label: (N, C) float 0/1).
    """
    # imported here: checkpoint.py needs this module's types
    from samplescope.train.checkpoint import Checkpoint, load_checkpoint

    config = config or TrainConfig()
    task = task or Classification()
    _check_data(x_train, y_train, "train", task)
    _check_data(x_val, y_val, "val", task)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device)
    # the whole dataset stays on the device: no per-batch host-to-device copies
    kind = torch.long if isinstance(task, Classification) else torch.float32
    x_train, y_train = x_train.to(device), y_train.to(device, kind)
    x_val, y_val = x_val.to(device), y_val.to(device, kind)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads or default_threads())
    torch.manual_seed(config.seed)  # for anything in the model that draws from the global RNG

    # --- setup ----------------------------------------------------------------
    model = model.to(memory_format=torch.channels_last)
    model.train()
    if config.first_conv_init == "patch_pca" and not resume:  # before the EMA copies the weights
        patch_pca_init(model, x_train, config.seed)
    n = len(x_train)
    steps_per_epoch = max(1, n // config.batch_size)  # drop the last partial batch
    # weight decay on the conv and linear weights only: BatchNorm's scales and shifts and the biases
    # are not scale-free, so decaying them only pulls the model towards zero
    groups: list[dict[str, Any]] = [{"params": list(model.parameters())}]
    if config.weight_decay:
        groups = [
            {"params": [p for p in model.parameters() if p.dim() > 1]},
            {"params": [p for p in model.parameters() if p.dim() <= 1], "weight_decay": 0.0},
        ]
    # torch.optim.AdamW and OneCycleLR's arithmetic, without torch.optim's import of torch._dynamo (optim.py)
    optimizer = AdamW([g for g in groups if g["params"]], lr=config.lr, weight_decay=config.weight_decay)
    scheduler = OneCycle(
        optimizer, max_lr=config.lr, total_steps=total_steps(config, steps_per_epoch), pct_start=config.pct_start
    )
    state = TrainState(
        model=model, optimizer=optimizer, scheduler=scheduler,
        generator=torch.Generator().manual_seed(config.seed), config=config,
        data_info={
            "n_train": n,
            "sample_shape": list(x_train.shape[1:]),
            "label_counts": task.label_summary(y_train.cpu().numpy()),
        },
        steps_per_epoch=steps_per_epoch,
        ema=WeightEMA(model, config.ema) if config.ema else None,
        lookahead=Lookahead(model, config.lookahead, config.lookahead_alpha) if config.lookahead else None,
    )  # fmt: skip
    evaluated = state.ema.model if state.ema is not None else model  # what validation measures
    # step rows: every k-th validation sample (a view; spread over the set even when it is sorted by class)
    stride = max(1, math.ceil(len(x_val) / config.eval_subset)) if config.eval_subset else 1
    x_step, y_step = x_val[::stride], y_val[::stride]
    callbacks = list(callbacks)
    if checkpoint_dir is not None:
        # first, so the checkpoint is on disk before any other on_epoch_end runs
        callbacks.insert(0, Checkpoint(checkpoint_dir))
    if resume:
        load_checkpoint(checkpoint_dir, state)
        log.info("resumed from %s at epoch %d, step %d", checkpoint_dir, state.epoch, state.step)

    def record(kind: Literal["step", "epoch"], sums: list[float]) -> dict[str, Any]:
        """Evaluate on the validation set; append and return the history row."""
        xv, yv = (x_step, y_step) if kind == "step" else (x_val, y_val)
        val_loss, val_acc = evaluate(evaluated, xv, yv, config.eval_batch_size, task)
        loss_sum, correct, seen, steps = sums
        row = {
            "kind": kind, "epoch": state.epoch + 1, "step": state.step,
            "train_loss": loss_sum / steps if steps else math.nan,
            "train_acc": correct / seen if seen else math.nan,
            "val_loss": val_loss, "val_acc": val_acc, "val_samples": len(xv), "lr": state.lr,
            "elapsed_s": state.elapsed_s,
        }  # fmt: skip
        state.history.append(row)
        sums[:] = [0.0, 0, 0, 0]
        for cb in callbacks:
            cb.on_eval_end(state, row)
        return row

    # --- loop -----------------------------------------------------------------
    try:
        for cb in callbacks:
            cb.on_train_start(state)
        start_epoch = state.epoch  # > 0 when resuming
        for epoch in range(start_epoch, state.epochs):
            state.epoch = epoch
            perm = torch.randperm(n, generator=state.generator)
            sums = [0.0, 0, 0, 0]  # loss sum, correct, samples seen, steps since the last row
            t0 = time.perf_counter()
            steps = min(steps_per_epoch, state.total_steps - epoch * steps_per_epoch)  # the last may be short
            for i in range(steps):
                idx = perm[i * config.batch_size : (i + 1) * config.batch_size].to(device)
                xb, yb = x_train[idx], y_train[idx]  # (B, C, H, W), (B,)
                # images only; after augment_until of the steps, the plain images
                augment = xb.dim() == 4 and state.step < config.augment_until * state.total_steps
                if augment and (config.augment_rotate or config.augment_scale) and min(xb.shape[-2:]) >= MIN_AFFINE:
                    xb = random_affine(
                        xb, config.augment_shift, config.augment_rotate, config.augment_scale, state.generator
                    )
                elif augment and config.augment_shift:
                    xb = random_shift(xb, config.augment_shift, state.generator)
                xb = _fast_layout(xb)

                logits = model(xb)  # (B, num_classes)
                loss = task.loss(logits, yb, config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()

                state.step += 1
                if state.ema is not None:
                    state.ema.update(model, state.step)
                if state.lookahead is not None:  # after the EMA, the order the recipe was measured in
                    state.lookahead.update(model, state.step)
                if config.label_smoothing:  # history reports plain cross-entropy, like validation
                    loss = task.plain_loss(logits.detach(), yb)
                state.loss = loss.item()
                sums[0] += state.loss
                sums[1] += task.score_sum(logits.detach(), yb).item()
                sums[2] += len(yb)
                sums[3] += 1
                state.running_loss, state.running_acc = sums[0] / sums[3], sums[1] / sums[2]
                for cb in callbacks:
                    cb.on_step_end(state)

                last_step = i == steps - 1
                if config.eval_every and state.step % config.eval_every == 0 and not last_step:
                    state.elapsed_s += time.perf_counter() - t0  # the clock stops during eval
                    record("step", sums)
                    t0 = time.perf_counter()

            state.elapsed_s += time.perf_counter() - t0
            row = record("epoch", sums)
            for cb in callbacks:
                cb.on_epoch_end(state, row)
        state.epoch = state.epochs
        if state.ema is not None:  # the run keeps the weights validation measured
            model.load_state_dict(state.ema.state_dict())
        for cb in callbacks:
            cb.on_train_end(state)
    finally:
        torch.set_num_threads(previous_threads)
    model.eval()
    return state.history

"""The training core on a tiny synthetic task: seeded, CPU-only, a few seconds in all."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from samplescope.errors import CheckpointError
from samplescope.models import CNNConfig, SmallCNN
from samplescope.train import (
    Callback,
    HistoryLogger,
    ProgressBar,
    TrainConfig,
    evaluate,
    random_shift,
    train,
)
from samplescope.train.checkpoint import CHECKPOINT_NAME
from samplescope.train.loop import FIELDS, random_affine

SIZE = 12
MODEL = CNNConfig(num_classes=4, input_size=SIZE, channels=(8, 16))
FAST = TrainConfig(epochs=2, batch_size=32, lr=1e-2, eval_every=5, threads=1, augment_shift=1)


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def synthetic_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four kinds of stroke -- horizontal, vertical, diagonal, anti-diagonal -- drawn at a
    random place over noise: x (n, 1, 12, 12) in [0, 1], labels y (n,)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.3 * torch.rand(n, 1, SIZE, SIZE, generator=g)
    start = torch.randint(2, SIZE - 7, (n, 2), generator=g)
    for i in range(n):
        r, c = start[i].tolist()
        for t in range(6):
            dr, dc = [(0, t), (t, 0), (t, t), (t, 5 - t)][int(y[i])]
            x[i, 0, r + dr, c + dc] = 1.0
    return x, y


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, ...]:
    return (*synthetic_digits(320, seed=1), *synthetic_digits(200, seed=2))


def fresh_model(seed: int = 0, config: CNNConfig = MODEL) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(config)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k, value in a.items():
        assert torch.equal(value, b[k]), f"{k} differs"


# -----------------------------------------------------------------------------
# the model


def test_model_shapes_and_named_layers():
    model = SmallCNN()  # the MNIST default
    x = torch.rand(5, 1, 28, 28)
    assert model(x).shape == (5, 10)
    modules = dict(model.named_modules())
    assert isinstance(modules[model.gradcam_layer], nn.Conv2d)
    assert isinstance(modules[model.latent_layer], nn.Linear)
    assert model.classifier.in_features == model.latent_dim
    # the gradcam layer is the *last* conv
    last_conv = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)][-1]
    assert model.gradcam_layer == last_conv
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_convs_per_stage_default_count_and_bad_values():
    convs = lambda cfg: sum(isinstance(m, nn.Conv2d) for m in SmallCNN(cfg).modules())
    assert convs(CNNConfig(channels=(4, 8, 16))) == 5  # default: 1 in the first stage, 2 in the others
    assert convs(CNNConfig(channels=(4, 8, 16), convs_per_stage=3)) == 9
    assert convs(CNNConfig(channels=(4, 8, 16), convs_per_stage=(2, 1, 1))) == 4
    assert SmallCNN(CNNConfig()).latent_dim == 64  # global pooling: one value per channel
    with pytest.raises(ValueError, match=r"convs_per_stage.*3 stages.*\(1, 2\)"):
        SmallCNN(CNNConfig(channels=(4, 8, 16), convs_per_stage=(1, 2)))
    with pytest.raises(ValueError, match="convs_per_stage"):
        SmallCNN(CNNConfig(channels=(4, 8), convs_per_stage=0))


def test_model_rejects_too_many_stages_for_input():
    with pytest.raises(ValueError, match="input_size=4"):
        SmallCNN(CNNConfig(input_size=4, channels=(4, 4, 4, 4)))


def test_random_shift_moves_images_and_fills_zeros():
    x = torch.zeros(64, 2, 6, 6)
    x[:, :, 2, 3] = 1.0  # one bright pixel per image and channel
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal(out.sum(dim=(2, 3)), torch.ones(64, 2))  # a shift of <=2 keeps the pixel
    rows, cols = (out[:, 0] == 1).nonzero()[:, 1:].T
    assert rows.min() >= 0 and rows.max() <= 4 and cols.min() >= 1 and cols.max() <= 5
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 5  # images shift differently
    assert torch.equal(out[:, 0], out[:, 1])  # channels of one image move together


def test_random_affine_shift_only_is_a_whole_pixel_shift():
    x = torch.rand(32, 1, 8, 8)
    same = random_affine(x, 0, 0.0, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(same, x, atol=1e-6)  # no shift, angle or scale: the identity
    out = random_affine(x, 1, 0.0, 0.0, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(len(x)):  # brute force: one of the nine zero-filled 1-pixel shifts
        shifts = [padded[i, :, 1 + dy : 9 + dy, 1 + dx : 9 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        assert min(float((out[i] - s).abs().max()) for s in shifts) < 1e-5, i


def test_random_affine_rotates_and_scales_reproducibly():
    x = torch.zeros(16, 1, 28, 28)
    x[:, :, 13:15, 4:24] = 1.0  # a horizontal bar through the centre
    a = random_affine(x, 0, 30.0, 0.2, torch.Generator().manual_seed(1))
    b = random_affine(x, 0, 30.0, 0.2, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    mass = a.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))  # scaling by s changes the area by about s^2
    assert ((mass > 0.6) & (mass < 1.5)).all() and mass.std() > 0.02
    rows = a[:, 0].sum(dim=2)  # a rotated bar covers more rows than the 2 of the original
    assert ((rows > 0.05).sum(dim=1) > 2).float().mean() > 0.8


# -----------------------------------------------------------------------------
# the loop


def test_same_seed_gives_identical_weights(data):
    a, b, c = fresh_model(), fresh_model(), fresh_model()
    train(a, *data, FAST)
    train(b, *data, FAST)
    train(c, *data, TrainConfig(**{**FAST.__dict__, "seed": 1}))
    assert_same_weights(weights(a), weights(b))
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


def test_learns_a_separable_task(data):
    model = fresh_model()
    history = train(model, *data, TrainConfig(**{**FAST.__dict__, "epochs": 3}))
    rows = history.to_rows()
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    assert history.final["val_acc"] > 0.9  # chance is 0.25
    _, acc = evaluate(model, data[2], data[3])
    assert acc == history.final["val_acc"]


def test_history_rows_have_every_field(data):
    history = train(fresh_model(), *data, FAST)
    rows = history.to_rows()
    assert all(set(row) == set(FIELDS) for row in rows)
    assert [r["epoch"] for r in history.to_rows("epoch")] == [1, 2]
    steps_per_epoch = 320 // 32
    assert [r["step"] for r in history.to_rows("epoch")] == [steps_per_epoch, 2 * steps_per_epoch]
    assert [r["step"] for r in history.to_rows("step")] == [5, 15]  # step 10 is an epoch end
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
    assert all(0 <= r["train_acc"] <= 1 and 0 <= r["val_acc"] <= 1 for r in rows)
    assert all(math.isfinite(r["train_loss"]) and r["lr"] > 0 for r in rows)
    elapsed = [r["elapsed_s"] for r in rows]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0
    frame = history.to_frame()
    assert list(frame.columns) == list(FIELDS) and len(frame) == len(history)
    assert {r["val_samples"] for r in rows} == {200}


class Evaluated(Callback):
    """The weights validation measured at each row (the loop evaluates the model itself: no EMA here)."""

    def __init__(self) -> None:
        self.at: list[tuple[str, dict[str, torch.Tensor]]] = []

    def on_eval_end(self, state, row) -> None:
        self.at.append((row["kind"], {k: v.clone() for k, v in state.model.state_dict().items()}))


def test_eval_subset_evaluates_step_rows_on_every_kth_sample_and_epoch_rows_on_all(data):
    x_val, y_val = data[2], data[3]
    full, sub, seen = fresh_model(), fresh_model(), Evaluated()
    whole = train(full, *data, FAST).to_rows()
    rows = train(sub, *data, TrainConfig(**{**FAST.__dict__, "eval_subset": 60}), callbacks=[seen]).to_rows()
    assert_same_weights(weights(full), weights(sub))  # evaluation changes nothing in training
    assert [(r["kind"], r["val_samples"]) for r in rows] == [("step", 50), ("epoch", 200), ("step", 50), ("epoch", 200)]
    for row, ref, (_, state) in zip(rows, whole, seen.at, strict=True):
        model = fresh_model()
        model.load_state_dict(state)
        stride = 4 if row["kind"] == "step" else 1  # ceil(200 / 60): samples 0, 4, ..., 196
        loss, acc = evaluate(model, x_val[::stride], y_val[::stride])
        assert (row["val_loss"], row["val_acc"]) == pytest.approx((loss, acc), rel=1e-6)
        if row["kind"] == "epoch":
            assert (row["val_loss"], row["val_acc"]) == (ref["val_loss"], ref["val_acc"])
    with pytest.raises(ValueError, match="eval_subset"):
        TrainConfig(eval_subset=-1)


class WeightsAt(Callback):
    """The model's weights after optimizer step ``step``."""

    def __init__(self, step: int) -> None:
        self.step, self.weights = step, None

    def on_step_end(self, state) -> None:
        if state.step == self.step:
            self.weights = weights(state.model)


def test_augment_until_trains_the_last_steps_on_plain_images(data):
    def config(**changes) -> TrainConfig:
        return TrainConfig(**{**FAST.__dict__, **changes})

    # 0: no step is augmented, so the run is the augmentation-free run (no draws either)
    plain, never = fresh_model(), fresh_model()
    train(plain, *data, config(augment_shift=0))
    train(never, *data, config(augment_until=0.0))
    assert_same_weights(weights(plain), weights(never))
    # 0.5 of 20 steps: the first epoch is the fully augmented run's, the second is not
    full_at, half_at = WeightsAt(10), WeightsAt(10)
    full, half = fresh_model(), fresh_model()
    train(full, *data, config(), callbacks=[full_at])
    train(half, *data, config(augment_until=0.5), callbacks=[half_at])
    assert_same_weights(full_at.weights, half_at.weights)
    assert not torch.equal(full.classifier.weight, half.classifier.weight)
    assert not torch.equal(plain.classifier.weight, half.classifier.weight)
    with pytest.raises(ValueError, match="augment_until"):
        config(augment_until=1.5)


class Groups(Callback):
    def on_train_start(self, state) -> None:
        self.groups = [([tuple(p.shape) for p in g["params"]], g["weight_decay"]) for g in state.optimizer.param_groups]


def test_weight_decay_spares_batchnorm_and_biases(data):
    model, seen = fresh_model(), Groups()
    train(model, *data, TrainConfig(**{**FAST.__dict__, "epochs": 0.1, "weight_decay": 0.05}), callbacks=[seen])
    (decayed, wd), (spared, none) = seen.groups
    assert (wd, none) == (0.05, 0.0)
    assert sorted(decayed) == sorted(tuple(p.shape) for p in model.parameters() if p.dim() > 1)
    assert sorted(spared) == sorted(tuple(p.shape) for p in model.parameters() if p.dim() == 1)
    plain = Groups()  # no decay: one group, as before
    train(fresh_model(), *data, TrainConfig(**{**FAST.__dict__, "epochs": 0.1}), callbacks=[plain])
    assert len(plain.groups) == 1 and len(plain.groups[0][0]) == len(list(model.parameters()))


def test_fractional_epochs_stop_the_last_epoch_early(data):
    # 1.5 epochs of 10 steps: 15 steps, the one-cycle schedule spread over them
    class Lrs(Callback):
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def on_step_end(self, state):  # the lr the next step will use
            self.lrs.append(state.lr)
            self.total = state.total_steps

    spy = Lrs()
    config = TrainConfig(**{**FAST.__dict__, "epochs": 1.5, "eval_every": 0})
    history = train(fresh_model(), *data, config, callbacks=[ProgressBar(disable=True), spy])
    assert [(r["epoch"], r["step"]) for r in history.to_rows("epoch")] == [(1, 10), (2, 15)]
    assert spy.total == 15 and len(spy.lrs) == 15
    assert spy.lrs[-2] < 1e-3 * config.lr  # the 15th step ran at the annealed end of the schedule
    with pytest.raises(ValueError, match="epochs must be > 0"):
        TrainConfig(epochs=0)


class CallOrder(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_train_start(self, state):
        self.calls.append("train_start")

    def on_step_end(self, state):
        self.calls.append("step")

    def on_eval_end(self, state, row):
        self.calls.append(f"eval_{row['kind']}")

    def on_epoch_end(self, state, row):
        self.calls.append("epoch")

    def on_train_end(self, state):
        self.calls.append("train_end")


def test_callbacks_see_every_hook_in_order(data):
    spy = CallOrder()
    train(fresh_model(), *data, TrainConfig(**{**FAST.__dict__, "epochs": 1}), callbacks=[spy])
    assert spy.calls == (
        ["train_start"] + ["step"] * 5 + ["eval_step"] + ["step"] * 5
        + ["eval_epoch", "epoch", "train_end"]
    )  # fmt: skip


def test_progress_bar_and_history_logger(data, tmp_path, capsys):
    path = tmp_path / "history.jsonl"
    history = train(
        fresh_model(), *data, FAST,
        callbacks=[ProgressBar(disable=True), ProgressBar(), HistoryLogger(path)],
    )  # fmt: skip
    assert "val_acc" in capsys.readouterr().err  # the enabled bar writes to stderr
    logged = [json.loads(line) for line in path.read_text().splitlines()]
    assert logged == history.to_rows()


# -----------------------------------------------------------------------------
# checkpoints


class InterruptAfterEpoch(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state, row):
        if row["epoch"] == self.epoch:
            raise KeyboardInterrupt


def test_resume_after_interrupt_gives_the_uninterrupted_weights(data, tmp_path):
    uninterrupted = fresh_model()
    full_history = train(uninterrupted, *data, FAST)

    model = fresh_model()
    with pytest.raises(KeyboardInterrupt):
        train(model, *data, FAST, callbacks=[InterruptAfterEpoch(1)], checkpoint_dir=tmp_path)
    assert (tmp_path / CHECKPOINT_NAME).is_file()
    assert list(tmp_path.iterdir()) == [tmp_path / CHECKPOINT_NAME]  # no temp file left

    resumed = fresh_model(seed=99)  # initial weights are irrelevant: they come from the checkpoint
    history = train(resumed, *data, FAST, checkpoint_dir=tmp_path, resume=True)
    assert_same_weights(weights(resumed), weights(uninterrupted))
    strip = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in full_history]
    assert [{k: v for k, v in r.items() if k != "elapsed_s"} for r in history] == strip


def test_resume_a_finished_run_changes_nothing(data, tmp_path):
    model = fresh_model()
    history = train(model, *data, FAST, checkpoint_dir=tmp_path)
    again = fresh_model(seed=5)
    resumed_history = train(again, *data, FAST, checkpoint_dir=tmp_path, resume=True)
    assert_same_weights(weights(again), weights(model))
    assert resumed_history.to_rows() == history.to_rows()


def test_resume_without_a_checkpoint_names_the_path(data, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(CheckpointError, match=r"nowhere/checkpoint\.pt does not exist"):
        train(fresh_model(), *data, FAST, checkpoint_dir=missing, resume=True)
    with pytest.raises(CheckpointError, match="resume=True needs checkpoint_dir"):
        train(fresh_model(), *data, FAST, resume=True)


def test_resume_a_corrupt_checkpoint(data, tmp_path):
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        train(fresh_model(), *data, FAST, checkpoint_dir=tmp_path, resume=True)


@pytest.fixture
def one_epoch_checkpoint(data, tmp_path) -> Path:
    with pytest.raises(KeyboardInterrupt):
        train(
            fresh_model(), *data, FAST, callbacks=[InterruptAfterEpoch(1)], checkpoint_dir=tmp_path
        )
    return tmp_path


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"batch_size": 16}, "train config batch_size: checkpoint has 32, this run has 16"),
        ({"epochs": 3}, "train config epochs: checkpoint has 2, this run has 3"),
        ({"seed": 7}, "train config seed"),
    ],
)
def test_resume_with_a_different_train_config(data, one_epoch_checkpoint, change, match):
    config = TrainConfig(**{**FAST.__dict__, **change})
    with pytest.raises(CheckpointError, match=match):
        train(fresh_model(), *data, config, checkpoint_dir=one_epoch_checkpoint, resume=True)


def test_resume_ignores_settings_that_do_not_change_weights(data, one_epoch_checkpoint):
    config = TrainConfig(**{**FAST.__dict__, "eval_every": 0, "eval_batch_size": 7})
    train(fresh_model(), *data, config, checkpoint_dir=one_epoch_checkpoint, resume=True)


def test_resume_with_a_different_model_or_data(data, one_epoch_checkpoint):
    wider = CNNConfig(num_classes=4, input_size=SIZE, channels=(8, 32))
    with pytest.raises(CheckpointError, match=r"model config channels: checkpoint has \(8, 16\)"):
        train(fresh_model(config=wider), *data, FAST, checkpoint_dir=one_epoch_checkpoint,
              resume=True)  # fmt: skip
    x, y, x_val, y_val = data
    with pytest.raises(CheckpointError, match="training data n_train: checkpoint has 320"):
        train(fresh_model(), x[:256], y[:256], x_val, y_val, FAST,
              checkpoint_dir=one_epoch_checkpoint, resume=True)  # fmt: skip


def test_rejects_badly_shaped_data(data):
    x, y, x_val, y_val = data
    with pytest.raises(ValueError, match=r"x_train must be a float tensor \(N, C, H, W\)"):
        train(fresh_model(), x[:, 0], y, x_val, y_val, FAST)
    with pytest.raises(ValueError, match="y_val must be integer labels"):
        train(fresh_model(), x, y, x_val, y_val.float(), FAST)


def test_patch_pca_init_sets_the_first_conv_to_patch_principal_axes(data):
    from samplescope.train.patch_pca import patch_pca_init

    x = data[0]
    model = fresh_model()
    before = model.features[0].weight.detach().clone()
    patch_pca_init(model, x, seed=0, n_images=100)
    w = model.features[0].weight.detach().reshape(8, -1).double()  # (8 filters, 9)
    # the reference: numpy's eigen-decomposition of the same patches' covariance
    idx = torch.randint(0, len(x), (100,), generator=torch.Generator().manual_seed(0))
    patches = nn.functional.unfold(model.normalize(x[idx]), 3, padding=1).transpose(1, 2).reshape(-1, 9)
    p = patches.double().numpy()
    _vals, vecs = np.linalg.eigh(np.cov(p, rowvar=False, bias=True))
    top = vecs[:, ::-1][:, :4].T  # the 4 largest axes, one a row
    unit = (w / w.norm(dim=1, keepdim=True)).numpy()
    for i in range(4):  # each axis up to its sign, and its negation 4 filters later
        assert abs(abs(unit[i] @ top[i]) - 1) < 1e-5
        np.testing.assert_allclose(unit[i + 4], -unit[i], atol=1e-6)
    np.testing.assert_allclose(w.norm(dim=1).numpy(), before.reshape(8, -1).norm(dim=1).mean().item(), rtol=1e-5)
    # in the loop: deterministic for a seed, and not the model's own init
    a, b, plain = fresh_model(), fresh_model(), fresh_model()
    config = TrainConfig(**{**FAST.__dict__, "epochs": 0.2, "first_conv_init": "patch_pca"})
    train(a, *data, config)
    train(b, *data, config)
    train(plain, *data, TrainConfig(**{**FAST.__dict__, "epochs": 0.2}))
    assert_same_weights(weights(a), weights(b))
    assert not torch.equal(a.features[0].weight, plain.features[0].weight)
    with pytest.raises(ValueError, match="first_conv_init"):
        TrainConfig(first_conv_init="pca")

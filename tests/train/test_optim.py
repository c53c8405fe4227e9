"""samplescope's AdamW and one-cycle schedule against torch.optim's, bit for bit, and without torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from samplescope.models import CNNConfig, SmallCNN
from samplescope.train.optim import AdamW, OneCycle

MODEL = CNNConfig(num_classes=4, input_size=12, channels=(8, 16))
STEPS = 12


def groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """The loop's groups: decay on the conv and linear weights only."""
    if not weight_decay:
        return [{"params": list(model.parameters())}]
    return [
        {"params": [p for p in model.parameters() if p.dim() > 1]},
        {"params": [p for p in model.parameters() if p.dim() <= 1], "weight_decay": 0.0},
    ]


def run(make_optimizer, weight_decay: float, pct_start: float = 0.25, steps: int = STEPS):
    """Train a seeded channels-last SmallCNN ``steps`` steps; return its weights and the (lr, beta1) seen."""
    torch.manual_seed(0)
    model = SmallCNN(MODEL).to(memory_format=torch.channels_last)
    opt, schedule = make_optimizer(groups(model, weight_decay), weight_decay, pct_start, steps)
    g = torch.Generator().manual_seed(1)
    seen = []
    for _ in range(steps):
        x = torch.rand(16, 1, 12, 12, generator=g).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 4, (16,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        seen.append((opt.param_groups[0]["lr"], opt.param_groups[0]["betas"]))
    return [t.detach().clone() for t in model.state_dict().values()], seen


def ours(params, wd, pct_start, steps):
    opt = AdamW(params, lr=0.04, weight_decay=wd)
    return opt, OneCycle(opt, max_lr=0.04, total_steps=steps, pct_start=pct_start)


def torchs(foreach: bool):
    def make(params, wd, pct_start, steps):
        opt = torch.optim.AdamW(params, lr=0.04, weight_decay=wd, foreach=foreach)
        return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.04, total_steps=steps, pct_start=pct_start)

    return make


@pytest.mark.parametrize("foreach", [False, True], ids=["single-tensor", "foreach"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.02])
def test_adamw_and_one_cycle_match_torch_optim_bit_for_bit(foreach: bool, weight_decay: float) -> None:
    mine, mine_seen = run(ours, weight_decay)
    ref, ref_seen = run(torchs(foreach), weight_decay)
    assert mine_seen == ref_seen  # the same python floats: lr and beta1 at every step
    for a, b in zip(mine, ref, strict=True):
        assert torch.equal(a, b)
    start, _ = run(ours, weight_decay, steps=1)  # the weights did move
    assert not all(torch.equal(a, b) for a, b in zip(start, mine, strict=True))


@pytest.mark.parametrize("pct_start,steps", [(0.15, 7), (0.5, 4), (0.1, 3)])
def test_schedule_edges_match_one_cycle_lr(pct_start: float, steps: int) -> None:
    """Short schedules, where the warm-up ends before step 1 or between steps."""
    assert run(ours, 0.0, pct_start, steps)[1] == run(torchs(False), 0.0, pct_start, steps)[1]


def test_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(0)
    model = SmallCNN(MODEL)
    x, y = torch.rand(8, 1, 12, 12), torch.randint(0, 4, (8,))

    def step(opt, schedule):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        schedule.step()

    opt = AdamW([{"params": list(model.parameters())}], lr=0.01, weight_decay=0.0)
    schedule = OneCycle(opt, 0.01, total_steps=6)
    for _ in range(3):
        step(opt, schedule)
    saved = ({k: v.clone() for k, v in model.state_dict().items()}, opt.state_dict(), schedule.state_dict())
    lr_then = (opt.param_groups[0]["lr"], opt.param_groups[0]["betas"])
    step(opt, schedule)
    after = [p.detach().clone() for p in model.parameters()]

    model.load_state_dict(saved[0])
    opt2 = AdamW([{"params": list(model.parameters())}], lr=0.01, weight_decay=0.0)
    schedule2 = OneCycle(opt2, 0.01, total_steps=6)
    opt2.load_state_dict(saved[1])
    schedule2.load_state_dict(saved[2])
    assert (opt2.param_groups[0]["lr"], opt2.param_groups[0]["betas"]) == lr_then
    step(opt2, schedule2)
    for a, b in zip(after, model.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="this schedule has 7"):
        OneCycle(opt2, 0.01, total_steps=7).load_state_dict(saved[2])


def test_training_does_not_import_torch_dynamo() -> None:
    """The reason this module exists: a fresh process trains without loading torch._dynamo."""
    code = (
        "import sys, torch\n"
        "from samplescope.models import CNNConfig, SmallCNN\n"
        "from samplescope.train import TrainConfig, train\n"
        "x, y = torch.rand(64, 1, 12, 12), torch.randint(0, 4, (64,))\n"
        "train(SmallCNN(CNNConfig(num_classes=4, input_size=12, channels=(8, 16))), x, y, x, y,\n"
        "      TrainConfig(epochs=1, batch_size=32, threads=1, ema=0.9, lookahead=2))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

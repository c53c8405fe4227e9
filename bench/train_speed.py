"""How fast samplescope's training recipes are, against PyTorch's examples/mnist recipe.

    python bench/train_speed.py [--recipes fast,default,reference] [--threads N]
                                [--ref-budget 240] [--eval-interval 5] [--seed 0]

Every training runs in this process with the same torch thread count, on the
60,000 training images, and is evaluated on the 10,000 test images at regular
intervals. Clocks only run while training: they are paused during evaluation.
Two clocks: wall seconds (what the targets are about, on a quiet machine) and this
process's CPU seconds (``time.process_time``), which other jobs on a loaded machine
inflate far less; with ``--threads 1`` it is a load-insensitive proxy for the wall
time. The load average is printed beside every figure.

Prints each accuracy-vs-seconds curve, the time each recipe needed to reach 99.0%,
99.5% and 99.6%, the speed-ups against the reference and each recipe's final accuracy.

The reference (https://github.com/pytorch/examples/blob/main/mnist/main.py):
conv 32 3x3 -> conv 64 3x3 -> max-pool -> dropout 0.25 -> fc 128 -> dropout 0.5
-> fc 10 -> log_softmax; Adadelta lr 1.0, StepLR gamma 0.7 per epoch, batch 64,
inputs normalised with mean 0.1307, std 0.3081. It stops at 99.0% or after
``--ref-budget`` seconds of training; if it never gets there, its time and the
ratios are bounds (">").

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from samplescope.data.mnist import load_mnist
from samplescope.models import CNNConfig, SmallCNN, count_parameters
from samplescope.train import RECIPES, Callback, evaluate, train
from samplescope.train.loop import default_threads

TARGETS = (0.99, 0.995, 0.996)  # the fast recipe's goal, then the default's (99.6% within 90 s)


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


@dataclass
class Curve:
    """(wall seconds, CPU seconds, validation accuracy, load average) at each evaluation."""

    name: str
    points: list[tuple[float, float, float, float]] = field(default_factory=list)

    def add(self, wall: float, cpu: float, acc: float) -> None:
        self.points.append((wall, cpu, acc, os.getloadavg()[0]))
        print(f"  {self.name:10s} {wall:7.1f} s wall {cpu:7.1f} s CPU  {acc:.4f}  {load()}", flush=True)

    def time_to(self, target: float) -> tuple[float, float, float] | None:
        """(wall, CPU, load) at the first evaluation at or above ``target``."""
        return next(((w, c, ld) for w, c, acc, ld in self.points if acc >= target), None)


class CpuClock(Callback):
    """Adds a point per evaluation, with this process's CPU time spent training (evaluation excluded)."""

    def __init__(self, curve: Curve) -> None:
        self.curve, self.cpu, self.resumed, self.last_step = curve, 0.0, 0.0, 0.0

    def on_train_start(self, state) -> None:
        self.resumed = time.process_time()

    def on_step_end(self, state) -> None:
        self.last_step = time.process_time()

    def on_eval_end(self, state, row) -> None:
        self.cpu += self.last_step - self.resumed  # the step's end, before the evaluation started
        self.curve.add(row["elapsed_s"], self.cpu, row["val_acc"])
        self.resumed = time.process_time()


# -----------------------------------------------------------------------------
# the reference recipe


class ReferenceNet(nn.Module):
    """pytorch/examples mnist/main.py ``Net``, with its input normalisation folded in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - 0.1307) / 0.3081  # (B, 1, 28, 28)
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)  # (B, 64, 12, 12)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def train_reference(
    x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
    budget_s: float, eval_interval_s: float, seed: int,
) -> Curve:  # fmt: skip
    """Train the reference until 99.0% or ``budget_s`` seconds of wall time."""
    torch.manual_seed(seed)
    model = ReferenceNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    g = torch.Generator().manual_seed(seed)
    batch_size, elapsed, cpu, next_eval = 64, 0.0, 0.0, eval_interval_s
    curve = Curve("reference")
    for _epoch in range(14):  # the example's default epoch count
        model.train()
        perm = torch.randperm(len(x), generator=g)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.nll_loss(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if elapsed + time.perf_counter() - t0 >= next_eval:
                elapsed += time.perf_counter() - t0  # clocks paused while evaluating
                cpu += time.process_time() - c0
                curve.add(elapsed, cpu, evaluate(model, x_val, y_val)[1])
                if curve.points[-1][2] >= TARGETS[0] or elapsed >= budget_s:
                    return curve
                next_eval += eval_interval_s
                t0, c0 = time.perf_counter(), time.process_time()
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
        scheduler.step()
    return curve


def train_recipe(name: str, data: Sequence[torch.Tensor], threads: int, seed: int) -> Curve:
    recipe = RECIPES[name]
    # evaluate about ten times an epoch, on the whole validation set, so the times to a target are read finely
    every = max(1, 6000 // recipe.train_config().batch_size)
    config = recipe.train_config(threads=threads, seed=seed, eval_every=every, eval_subset=0)
    torch.manual_seed(seed)
    model = SmallCNN(CNNConfig(**recipe.model))
    print(f"\nrecipe {name!r}: SmallCNN ({count_parameters(model):,} parameters), {config}; {load()}")
    curve = Curve(name)
    train(model, *data, config, callbacks=[CpuClock(curve)])
    return curve


# -----------------------------------------------------------------------------
# reporting


def print_curves(curves: Sequence[Curve]) -> None:
    for curve in curves:
        print(f"\n{curve.name}: validation accuracy vs training seconds")
        for wall, cpu, acc, ld in curve.points:
            bar = "#" * max(0, int((acc - 0.95) * 1000))  # one # per 0.1% above 95%
            print(f"  {wall:7.1f} s wall {cpu:7.1f} s CPU  {acc * 100:6.2f}%  load {ld:4.1f}  {bar}")


def print_summary(curves: Sequence[Curve]) -> None:
    print(f"\nsummary ({load()})")
    ref = next((c for c in curves if c.name == "reference"), None)
    for target in TARGETS:
        for curve in curves:
            hit = curve.time_to(target)
            if hit is None:
                seen = curve.points[-1] if curve.points else (0.0, 0.0, 0.0, 0.0)
                why = "never"
                if curve.name == "reference":
                    why = "it stops at 99.0%" if target > TARGETS[0] else "budget spent"
                print(f"  {curve.name:10s} reaches {target:.1%}: > {seen[0]:.1f} s wall, > {seen[1]:.1f} s CPU ({why})")
                continue
            line = f"  {curve.name:10s} reaches {target:.1%} after {hit[0]:6.1f} s wall, {hit[1]:6.1f} s CPU (load {hit[2]:.1f})"
            if ref is not None and curve is not ref and target == TARGETS[0]:
                ref_hit = ref.time_to(target)
                if ref_hit is not None:
                    line += f"; {ref_hit[0] / hit[0]:.1f}x wall, {ref_hit[1] / hit[1]:.1f}x CPU vs reference"
                elif ref.points:
                    line += f"; > {ref.points[-1][0] / hit[0]:.1f}x wall, > {ref.points[-1][1] / hit[1]:.1f}x CPU (bounds)"
            print(line)
    for curve in curves:
        if curve.name != "reference" and curve.points:
            wall, cpu, acc, ld = curve.points[-1]
            print(f"  {curve.name:10s} final accuracy {acc:.2%} after {wall:.1f} s wall, {cpu:.1f} s CPU (load {ld:.1f})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", default="fast,default,reference",
                        help="comma-separated, run in this order: recipe names and 'reference'")  # fmt: skip
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--ref-budget", type=float, default=240.0,
                        help="seconds of reference training at most (default 240)")  # fmt: skip
    parser.add_argument("--eval-interval", type=float, default=5.0,
                        help="reference: seconds of training between evaluations")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n != "reference" and n not in RECIPES]
    if unknown:
        parser.error(f"--recipes: unknown {unknown}; choose from {sorted(RECIPES)} and 'reference'")

    # --- data: uint8 -> float in [0, 1], (N, 1, 28, 28) -----------------------
    mnist = load_mnist(progress=True)
    x = torch.from_numpy(mnist.x_train).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(mnist.y_train).long()
    x_val = torch.from_numpy(mnist.x_test).float().div_(255).unsqueeze(1)
    y_val = torch.from_numpy(mnist.y_test).long()
    torch.set_num_threads(args.threads)
    print(f"MNIST train {tuple(x.shape)}, evaluated on test {tuple(x_val.shape)}; "
          f"torch {torch.__version__}, {args.threads} threads; before: {load()}")  # fmt: skip

    curves: list[Curve] = []
    for name in names:
        if name == "reference":
            print(f"\nreference examples/mnist recipe, until {TARGETS[0]:.1%} or {args.ref_budget:.0f} s; {load()}")
            curves.append(train_reference(x, y, x_val, y_val, args.ref_budget, args.eval_interval, args.seed))
        else:
            curves.append(train_recipe(name, (x, y, x_val, y_val), args.threads, args.seed))
        torch.set_num_threads(args.threads)

    print_curves(curves)
    print_summary(curves)
    print(f"after: {load()}")


if __name__ == "__main__":
    main()

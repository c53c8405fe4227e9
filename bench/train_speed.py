"""How fast samplescope's default MNIST training is, against PyTorch's examples/mnist recipe.

    python bench/train_speed.py [--quick] [--threads N] [--ref-budget 240] [--seed 0]

Both trainings run in this process with the same torch thread count, on the
60,000 training images, and are evaluated on the 10,000 test images at regular
intervals. The clock only runs while training: it is paused during evaluation.
Prints both accuracy-vs-seconds curves, the training time each needed to reach
99.0%, their ratio, and samplescope's final accuracy and total training time.

The reference (https://github.com/pytorch/examples/blob/main/mnist/main.py):
conv 32 3x3 -> conv 64 3x3 -> max-pool -> dropout 0.25 -> fc 128 -> dropout 0.5
-> fc 10 -> log_softmax; Adadelta lr 1.0, StepLR gamma 0.7 per epoch, batch 64,
inputs normalised with mean 0.1307, std 0.3081. It stops at 99.0% or after
``--ref-budget`` seconds of training; if it never gets there, its time and the
ratio are lower bounds (">=").

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from samplescope.data.mnist import load_mnist
from samplescope.models import SmallCNN, count_parameters
from samplescope.train import ProgressBar, TrainConfig, evaluate, train
from samplescope.train.loop import default_threads

TARGET = 0.99


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
) -> list[tuple[float, float]]:  # fmt: skip
    """Train the reference until 99.0% or ``budget_s``; return (seconds, val_acc) points."""
    torch.manual_seed(seed)
    model = ReferenceNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    g = torch.Generator().manual_seed(seed)
    batch_size, elapsed, next_eval = 64, 0.0, eval_interval_s
    curve: list[tuple[float, float]] = []
    for _epoch in range(14):  # the example's default epoch count
        model.train()
        perm = torch.randperm(len(x), generator=g)
        t0 = time.perf_counter()
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.nll_loss(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if elapsed + time.perf_counter() - t0 >= next_eval:
                elapsed += time.perf_counter() - t0  # clock paused while evaluating
                curve.append((elapsed, evaluate(model, x_val, y_val)[1]))
                print(f"  reference  {elapsed:7.1f} s  {curve[-1][1]:.4f}", flush=True)
                if curve[-1][1] >= TARGET or elapsed >= budget_s:
                    return curve
                next_eval += eval_interval_s
                t0 = time.perf_counter()
        elapsed += time.perf_counter() - t0
        scheduler.step()
    return curve


# -----------------------------------------------------------------------------
# reporting


def time_to(curve: Sequence[tuple[float, float]], target: float) -> float | None:
    return next((t for t, acc in curve if acc >= target), None)


def print_curves(curves: dict[str, list[tuple[float, float]]]) -> None:
    for name, curve in curves.items():
        print(f"\n{name}: validation accuracy vs training seconds")
        for t, acc in curve:
            bar = "#" * max(0, int((acc - 0.95) * 1000))  # one # per 0.1% above 95%
            print(f"  {t:7.1f} s  {acc * 100:6.2f}%  {bar}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="samplescope: 2 epochs; reference budget 60 s")  # fmt: skip
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--ref-budget", type=float, default=None,
                        help="seconds of reference training at most (default 240, quick 60)")  # fmt: skip
    parser.add_argument("--eval-interval", type=float, default=5.0,
                        help="reference: seconds of training between evaluations")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    budget = args.ref_budget if args.ref_budget is not None else (60.0 if args.quick else 240.0)

    # --- data: uint8 -> float in [0, 1], (N, 1, 28, 28) -----------------------
    mnist = load_mnist(progress=True)
    x = torch.from_numpy(mnist.x_train).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(mnist.y_train).long()
    x_val = torch.from_numpy(mnist.x_test).float().div_(255).unsqueeze(1)
    y_val = torch.from_numpy(mnist.y_test).long()
    torch.set_num_threads(args.threads)
    print(f"MNIST train {tuple(x.shape)}, evaluated on test {tuple(x_val.shape)}; "
          f"torch {torch.__version__}, {args.threads} threads")  # fmt: skip

    # --- samplescope's default ---------------------------------------------------
    config = TrainConfig(threads=args.threads, seed=args.seed)
    if args.quick:
        config = TrainConfig(threads=args.threads, seed=args.seed, epochs=2)
    torch.manual_seed(args.seed)
    model = SmallCNN()
    print(f"\nsamplescope SmallCNN ({count_parameters(model):,} parameters), {config}")
    history = train(model, x, y, x_val, y_val, config, callbacks=[ProgressBar()])
    ours = [(r["elapsed_s"], r["val_acc"]) for r in history]

    # --- the reference ---------------------------------------------------------
    print(f"\nreference examples/mnist recipe, until {TARGET:.1%} or {budget:.0f} s of training")
    ref = train_reference(x, y, x_val, y_val, budget, args.eval_interval, args.seed)

    # --- report ----------------------------------------------------------------
    print_curves({"samplescope": ours, "reference": ref})
    t_ours, t_ref = time_to(ours, TARGET), time_to(ref, TARGET)
    print("\nsummary")
    print(f"  samplescope reaches {TARGET:.1%} after "
          + (f"{t_ours:.1f} s" if t_ours is not None else "never"))  # fmt: skip
    ref_seen = ref[-1][0] if ref else 0.0
    print(f"  reference   reaches {TARGET:.1%} after "
          + (f"{t_ref:.1f} s" if t_ref is not None else f"> {ref_seen:.1f} s (budget spent)"))  # fmt: skip
    if t_ours is not None:
        if t_ref is not None:
            print(f"  speed-up to {TARGET:.1%}: {t_ref / t_ours:.1f}x")
        else:
            print(f"  speed-up to {TARGET:.1%}: >= {ref_seen / t_ours:.1f}x (lower bound)")
    final = history.final
    print(f"  samplescope final accuracy {final['val_acc']:.2%} after {final['elapsed_s']:.1f} s "
          f"of training ({config.epochs} epochs)")  # fmt: skip


if __name__ == "__main__":
    main()

"""AdamW and the one-cycle schedule, without ``torch.optim``.

Why not ``torch.optim.AdamW``: building any ``torch.optim.Optimizer`` imports
``torch._dynamo`` (``Optimizer.add_param_group`` is wrapped by ``torch._disable_dynamo``,
and every ``step`` imports it again), and that import alone costs about 1.2 s of CPU on a
quiet core and ~10 s at load 8 -- a fixed cost every ``samplescope train`` and ``make demo``
paid before its first step. The update here is ``torch.optim.AdamW``'s (amsgrad off, no
``maximize``, not capturable) written with the same ``torch._foreach_*`` calls as its
multi-tensor path, and :class:`OneCycle` computes ``torch.optim.lr_scheduler.OneCycleLR``'s
learning rates and beta1 with the same float arithmetic; tests/train/test_optim.py checks
both bit for bit against torch.optim over several steps.

    opt = AdamW([{"params": list(model.parameters())}], lr=0.04, weight_decay=0.0)
    schedule = OneCycle(opt, max_lr=0.04, total_steps=1170, pct_start=0.15)
    ... loss.backward(); opt.step(); schedule.step(); opt.zero_grad()
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


class AdamW:
    """Adam with decoupled weight decay, over parameter groups (dicts with ``params`` and overrides).

    ``param_groups`` and each group's ``lr``, ``betas``, ``eps`` and ``weight_decay`` read like
    torch.optim's, so a schedule (:class:`OneCycle`) or a test can set and read them.
    """

    def __init__(
        self,
        groups: Iterable[dict[str, Any]],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        self.param_groups: list[dict[str, Any]] = [{**defaults, **g, "params": list(g["params"])} for g in groups]
        params = [p for g in self.param_groups for p in g["params"]]
        if len({id(p) for p in params}) != len(params):
            raise ValueError("AdamW: a parameter appears in more than one group")
        # per parameter, in group order: steps taken, first and second moments (made at its first step)
        self.steps = [0] * len(params)
        self.exp_avg: list[torch.Tensor | None] = [None] * len(params)
        self.exp_avg_sq: list[torch.Tensor | None] = [None] * len(params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (torch.optim.AdamW's, op for op)."""
        i = 0
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            params, grads, avgs, sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is not None:
                    if self.exp_avg[i] is None:
                        self.exp_avg[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
                        self.exp_avg_sq[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    self.steps[i] += 1
                    params.append(p)
                    grads.append(p.grad)
                    avgs.append(self.exp_avg[i])
                    sqs.append(self.exp_avg_sq[i])
                    steps.append(self.steps[i])
                i += 1
            if not params:
                continue
            if wd != 0:
                torch._foreach_mul_(params, 1 - lr * wd)
            torch._foreach_lerp_(avgs, grads, 1 - beta1)
            torch._foreach_mul_(sqs, beta2)
            torch._foreach_addcmul_(sqs, grads, grads, 1 - beta2)
            # python floats, as torch.optim computes them from its float32 step counters
            step_size = [(lr / (1 - beta1 ** float(s))) * -1 for s in steps]
            bias_correction2_sqrt = [(1 - beta2 ** float(s)) ** 0.5 for s in steps]
            denom = torch._foreach_sqrt(sqs)
            torch._foreach_div_(denom, bias_correction2_sqrt)
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, avgs, denom, step_size)

    def state_dict(self) -> dict[str, Any]:
        """Steps, moments and the groups' hyper-parameters (not the parameters themselves)."""
        return {
            "steps": list(self.steps),
            "exp_avg": [t.clone() if t is not None else None for t in self.exp_avg],
            "exp_avg_sq": [t.clone() if t is not None else None for t in self.exp_avg_sq],
            "groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["steps"]) != len(self.steps) or len(state["groups"]) != len(self.param_groups):
            raise ValueError(
                f"AdamW state has {len(state['steps'])} parameters in {len(state['groups'])} groups, "
                f"this optimizer {len(self.steps)} in {len(self.param_groups)}"
            )
        params = [p for g in self.param_groups for p in g["params"]]
        self.steps = [int(s) for s in state["steps"]]
        self.exp_avg = [None if t is None else t.to(p.device).clone() for t, p in zip(state["exp_avg"], params, strict=True)]
        self.exp_avg_sq = [
            None if t is None else t.to(p.device).clone() for t, p in zip(state["exp_avg_sq"], params, strict=True)
        ]
        for g, saved in zip(self.param_groups, state["groups"], strict=True):
            g.update({k: tuple(v) if k == "betas" else v for k, v in saved.items()})


class OneCycle:
    """``OneCycleLR`` (cosine, two phases, beta1 cycled 0.95 -> 0.85 -> 0.95) for :class:`AdamW`.

    The learning rate warms up from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start`` of ``total_steps``, then anneals to ``max_lr / div_factor / final_div_factor``;
    beta1 moves the other way. Built, it sets step 0's values; each :meth:`step` (after the
    optimizer's) sets the next step's.
    """

    def __init__(
        self,
        optimizer: AdamW,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
    ) -> None:
        if total_steps < 1 or not 0.0 <= pct_start <= 1.0:
            raise ValueError(f"OneCycle needs total_steps >= 1 and pct_start in [0, 1], got {total_steps}, {pct_start}")
        self.optimizer = optimizer
        self.total_steps = total_steps
        initial_lr = max_lr / div_factor
        self.lrs = (initial_lr, max_lr, initial_lr / final_div_factor)  # start, peak, end
        self.momenta = (max_momentum, base_momentum, max_momentum)
        self.warmup_end = float(pct_start * total_steps) - 1  # the step at the peak (OneCycleLR's end_step)
        self.last_step = -1
        self.step()

    @staticmethod
    def _cos(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def step(self) -> None:
        self.last_step += 1
        n = self.last_step
        if n > self.total_steps:
            raise ValueError(f"OneCycle stepped {n} times; the schedule has {self.total_steps} steps")
        if n <= self.warmup_end:
            phase, start, end = 0, 0.0, self.warmup_end
        else:
            phase, start, end = 1, self.warmup_end, self.total_steps - 1
        pct = (n - start) / (end - start)
        lr = self._cos(self.lrs[phase], self.lrs[phase + 1], pct)
        beta1 = self._cos(self.momenta[phase], self.momenta[phase + 1], pct)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
            g["betas"] = (beta1, *g["betas"][1:])

    def state_dict(self) -> dict[str, Any]:
        return {"last_step": self.last_step, "total_steps": self.total_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["total_steps"] != self.total_steps:
            raise ValueError(f"OneCycle state is for {state['total_steps']} steps, this schedule has {self.total_steps}")
        self.last_step = state["last_step"] - 1
        self.step()  # sets the groups' lr and beta1 for the saved step

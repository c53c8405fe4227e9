"""Lookahead in the training loop: the rule by hand, the loop against a callback doing it, resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from samplescope.train import Callback, TrainConfig, train
from samplescope.train.lookahead import Lookahead
from tests.train.test_train import (
    FAST,
    InterruptAfterEpoch,
    assert_same_weights,
    data,  # noqa: F401 (the module fixture)
    fresh_model,
    one_thread,  # noqa: F401 (autouse)
    weights,
)

LOOKAHEAD = TrainConfig(**{**FAST.__dict__, "lookahead": 3, "lookahead_alpha": 0.5})  # 10 steps an epoch


def test_lookahead_moves_the_slow_weights_alpha_of_the_way_every_k_steps():
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
    la = Lookahead(layer, k=2, alpha=0.25)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[5.0, -2.0]]))
    la.update(layer, step=1)  # not a multiple of k: the fast weights stay
    assert torch.equal(layer.weight, torch.tensor([[5.0, -2.0]]))
    la.update(layer, step=2)  # slow = 1 + 0.25 (5 - 1) = 2, 2 + 0.25 (-2 - 2) = 1; fast restarts there
    assert torch.equal(layer.weight, torch.tensor([[2.0, 1.0]]))
    assert torch.equal(la.slow[0], torch.tensor([[2.0, 1.0]]))


class HandLookahead(Callback):
    """The rule as the recipe was first measured: a callback after each step (after the EMA update)."""

    def __init__(self, model: nn.Module, k: int, alpha: float) -> None:
        self.k, self.alpha = k, alpha
        self.slow = [p.detach().clone() for p in model.parameters()]

    def on_step_end(self, state) -> None:
        if state.step % self.k == 0:
            with torch.no_grad():
                for s, p in zip(self.slow, state.model.parameters(), strict=True):
                    s.copy_(s + self.alpha * (p - s))
                    p.copy_(s)


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_loop_lookahead_matches_a_callback_doing_it_by_hand(data, ema):  # noqa: F811
    config = TrainConfig(**{**LOOKAHEAD.__dict__, "ema": ema})
    looked = fresh_model()
    train(looked, *data, config)
    by_hand = fresh_model()
    train(by_hand, *data, TrainConfig(**{**config.__dict__, "lookahead": 0}),
          callbacks=[HandLookahead(by_hand, 3, 0.5)])  # fmt: skip
    for (name, a), b in zip(weights(looked).items(), weights(by_hand).values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    plain = fresh_model()
    train(plain, *data, TrainConfig(**{**config.__dict__, "lookahead": 0}))
    assert not torch.allclose(weights(plain)["classifier.weight"], weights(looked)["classifier.weight"])


def test_resume_with_lookahead_gives_the_uninterrupted_weights(data, tmp_path):  # noqa: F811
    uninterrupted = fresh_model()
    train(uninterrupted, *data, LOOKAHEAD)
    model = fresh_model()
    with pytest.raises(KeyboardInterrupt):  # at step 10: the slow weights (synced at step 9) differ from the fast
        train(model, *data, LOOKAHEAD, callbacks=[InterruptAfterEpoch(1)], checkpoint_dir=tmp_path)
    resumed = fresh_model(seed=99)
    train(resumed, *data, LOOKAHEAD, checkpoint_dir=tmp_path, resume=True)
    assert_same_weights(weights(resumed), weights(uninterrupted))


@pytest.mark.parametrize("bad", [{"lookahead": -1}, {"lookahead_alpha": 0.0}, {"lookahead_alpha": 1.5}])
def test_bad_lookahead_settings_name_the_field(bad):
    with pytest.raises(ValueError, match="lookahead"):
        TrainConfig(**{**FAST.__dict__, **bad})

"""Training recipes and weight averaging: choices by name, determinism, EMA and resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from samplescope import cli
from samplescope.errors import ParameterError
from samplescope.models import CNNConfig, SmallCNN
from samplescope.pipeline.train import train_run
from samplescope.train import RECIPES, TrainConfig, WeightEMA, get_recipe, train
from tests.train.test_train import SIZE, assert_same_weights, synthetic_digits, weights


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, ...]:
    return (*synthetic_digits(320, seed=1), *synthetic_digits(200, seed=2))


def recipe_model(name: str, seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(CNNConfig(**RECIPES[name].model, num_classes=4, input_size=SIZE))


def short(name: str, **overrides) -> TrainConfig:
    """The recipe's settings, cut to two epochs of small batches on the synthetic task."""
    return RECIPES[name].train_config(**{"epochs": 2, "batch_size": 32, "eval_every": 4, "threads": 1,
                                         **overrides})


def test_fast_recipe_is_deterministic_for_a_seed(data):
    runs = []
    for _ in range(2):
        model = recipe_model("fast")
        history = train(model, *data, short("fast"))
        runs.append((weights(model), history.to_rows()))
    assert_same_weights(runs[0][0], runs[1][0])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]
    assert strip(runs[0][1]) == strip(runs[1][1])
    other = recipe_model("fast")
    train(other, *data, short("fast", seed=1))  # another seed draws other batches and shifts
    assert not torch.equal(weights(other)["classifier.weight"], runs[0][0]["classifier.weight"])


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_recipe_builds_and_learns_the_synthetic_task(data, name):
    model = recipe_model(name)
    history = train(model, *data, short(name, epochs=3))
    assert history.final["val_acc"] > 0.9, history.to_rows()
    modules = dict(model.named_modules())
    assert isinstance(modules[model.latent_layer], nn.Linear)  # the analysis reads these two
    assert isinstance(modules[model.gradcam_layer], nn.Conv2d)


def test_default_recipe_keeps_per_sample_losses_plain():
    # label smoothing puts a floor under every sample's loss, which the analysis reads
    assert RECIPES["default"].train_config().label_smoothing == 0.0


@pytest.mark.parametrize("bad", ["quick", "", "Default", None, 3])
def test_unknown_recipe_is_one_line_naming_the_choices(bad):
    with pytest.raises(ParameterError) as err:
        get_recipe(bad, "train_run()")
    message = str(err.value)
    assert "\n" not in message and repr(bad) in message and "train_run()" in message
    assert "default" in message and "fast" in message


def test_train_run_refuses_an_unknown_recipe_before_any_work(tmp_path):
    with pytest.raises(ParameterError, match=r"recipe='quick' in train_run\(\).*default, fast"):
        train_run("mnist", tmp_path / "run", recipe="quick")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["train", "demo"])
def test_cli_recipe_option_refuses_a_bad_value_in_one_line(command, capsys):
    assert cli.main([command, "--recipe", "quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'quick'" in err and "--recipe" in err and "'fast'" in err


def test_cli_recipe_choices_are_the_recipes():
    parser = cli._parser()
    assert parser.parse_args(["train", "--recipe", "fast"]).recipe == "fast"
    assert parser.parse_args(["train"]).recipe == "default"
    assert parser.parse_args(["demo", "--recipe", "fast"]).recipe == "fast"


# -----------------------------------------------------------------------------
# weight averaging


def test_ema_ends_with_the_averaged_weights_it_evaluated(data):
    model = recipe_model("fast")
    config = short("fast", ema=0.9)
    history = train(model, *data, config)
    from samplescope.train import evaluate

    x_val, y_val = data[2], data[3]
    assert evaluate(model, x_val, y_val)[1] == pytest.approx(history.final["val_acc"])
    plain = recipe_model("fast")
    train(plain, *data, short("fast", ema=0.0))
    assert not torch.equal(weights(plain)["classifier.weight"], weights(model)["classifier.weight"])


def test_ema_update_ramps_its_decay_and_copies_buffers():
    model = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    ema = WeightEMA(model, decay=0.99)
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[1].running_mean.fill_(5.0)
    before = ema.model[0].weight.clone()
    ema.update(model, step=1)  # decay min(0.99, 2 / 11): mostly the new weights
    expected = before + (1.0 - 2.0 / 11.0) * (1.0 - before)
    assert torch.allclose(ema.model[0].weight, expected)
    assert torch.equal(ema.model[1].running_mean, torch.full((1,), 5.0))
    with pytest.raises(ValueError, match="decay must be in"):
        WeightEMA(model, decay=1.0)


def test_resume_with_ema_gives_the_uninterrupted_weights(data, tmp_path):
    config = short("fast", ema=0.9)
    uninterrupted = recipe_model("fast")
    train(uninterrupted, *data, config)

    class Interrupt(Exception):
        pass

    from samplescope.train import Callback

    class StopAfterFirstEpoch(Callback):
        def on_epoch_end(self, state, row):
            raise Interrupt

    with pytest.raises(Interrupt):
        train(recipe_model("fast"), *data, config, callbacks=[StopAfterFirstEpoch()], checkpoint_dir=tmp_path)
    resumed = recipe_model("fast", seed=99)
    train(resumed, *data, config, checkpoint_dir=tmp_path, resume=True)
    assert_same_weights(weights(resumed), weights(uninterrupted))

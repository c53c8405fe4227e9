"""run_inference against the model called directly; prediction columns against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from samplescope.analysis.inference import (
    default_latent_layer,
    list_layers,
    prediction_columns,
    run_inference,
)
from samplescope.errors import NotFoundError, SamplescopeError

torch.set_num_threads(1)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc1 = nn.Linear(4 * 4 * 4, 8)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(8, 3)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.relu(self.fc1(self.features(x).flatten(1))))  # (B, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


@pytest.fixture
def model() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet()


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).random((10, 1, 8, 8), dtype=np.float32)


def test_list_layers_and_default(model: TinyNet) -> None:
    assert list_layers(model) == [
        "features",
        "features.0",
        "features.1",
        "features.2",
        "fc1",
        "drop",
        "head",
    ]
    assert default_latent_layer(model) == "head"
    with pytest.raises(SamplescopeError, match="no nn.Linear"):
        default_latent_layer(nn.Sequential(nn.Conv2d(1, 1, 1)))


def test_logits_and_latent_match_direct_call(model: TinyNet, images: np.ndarray) -> None:
    model.train()  # run_inference must switch to eval (dropout off) and restore the mode
    batches = [images[:4], torch.from_numpy(images[4:7]), images[7:]]
    result = run_inference(model, batches)
    assert model.training
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(images)
        expected_logits = model(x).numpy()
        expected_latent = model.embed(x).numpy()
    assert result.logits.dtype == np.float32 and result.latent.dtype == np.float32
    assert result.logits.shape == (10, 3) and result.latent.shape == (10, 8)
    np.testing.assert_allclose(result.logits, expected_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.latent, expected_latent, rtol=1e-5, atol=1e-6)
    assert result.layer == "head"


def test_preallocated_equals_joined(model: TinyNet, images: np.ndarray) -> None:
    joined = run_inference(model, [images[:4], images[4:]])
    pre = run_inference(model, [images[:4], images[4:]], n_samples=10)
    np.testing.assert_array_equal(pre.logits, joined.logits)
    np.testing.assert_array_equal(pre.latent, joined.latent)
    with pytest.raises(SamplescopeError, match="held 10 rows, not n_samples=11"):
        run_inference(model, [images], n_samples=11)
    with pytest.raises(SamplescopeError, match="more than n_samples=9"):
        run_inference(model, [images], n_samples=9)


def test_capture_output_is_flattened(model: TinyNet, images: np.ndarray) -> None:
    result = run_inference(model, [images[:5], images[5:]], layer="features", capture="output")
    with torch.no_grad():
        expected = model.eval().features(torch.from_numpy(images)).flatten(1).numpy()
    assert result.latent.shape == (10, 64)
    np.testing.assert_allclose(result.latent, expected, rtol=1e-5, atol=1e-6)


def test_hook_is_removed(model: TinyNet, images: np.ndarray) -> None:
    run_inference(model, [images])
    assert not model.head._forward_hooks


def test_unknown_layer_lists_valid_names(model: TinyNet, images: np.ndarray) -> None:
    with pytest.raises(NotFoundError, match=r"'nope'.*fc1, drop, head"):
        run_inference(model, [images], layer="nope")


def test_layer_run_twice_is_an_error(images: np.ndarray) -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(64, 64)
            self.out = nn.Linear(64, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.lin(self.lin(x.flatten(1))))

    with pytest.raises(SamplescopeError, match="ran 2 times"):
        run_inference(Twice(), [images], layer="lin")


def test_prediction_columns_match_torch() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (50, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 50)
    labels[:5] = -1
    cols = prediction_columns(logits, labels)

    t = torch.from_numpy(logits).double()
    probs = torch.softmax(t, 1).numpy()
    loss = torch.nn.functional.cross_entropy(t[5:], torch.from_numpy(labels[5:]), reduction="none")
    top = np.sort(probs, axis=1)
    assert cols["prediction"].dtype == np.int64
    np.testing.assert_array_equal(cols["prediction"], logits.argmax(1))
    assert cols["loss"].dtype == np.float32
    assert np.isnan(cols["loss"][:5]).all()
    np.testing.assert_allclose(cols["loss"][5:], loss.numpy(), rtol=1e-5)
    np.testing.assert_allclose(cols["confidence"], top[:, -1], rtol=1e-6)
    np.testing.assert_allclose(cols["margin"], top[:, -1] - top[:, -2], rtol=1e-5, atol=1e-7)
    assert cols["correct"].dtype == bool and not cols["correct"][:5].any()
    np.testing.assert_array_equal(cols["correct"][5:], logits[5:].argmax(1) == labels[5:])
    for k in range(4):
        assert cols[f"prob_{k}"].dtype == np.float32
        np.testing.assert_allclose(cols[f"prob_{k}"], probs[:, k], rtol=1e-6)


def test_prediction_columns_stable_for_huge_logits() -> None:
    logits = np.array([[1000.0, -1000.0, 0.0], [-5000.0, 5000.0, 4990.0]], dtype=np.float32)
    cols = prediction_columns(logits, np.array([1, 1]))
    assert np.isfinite(cols["loss"]).all()
    np.testing.assert_allclose(cols["loss"], [2000.0, 0.0], atol=1e-3)


def test_prediction_columns_rejects_bad_label() -> None:
    with pytest.raises(NotFoundError, match=r"label 7 .*\[0, 2\]"):
        prediction_columns(np.zeros((2, 3)), np.array([0, 7]))

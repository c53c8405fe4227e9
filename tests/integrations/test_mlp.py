"""The MLP: standardisation inside the model, config round trip through run.json's model spec."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from samplescope.models import persist
from samplescope.models.mlp import MLP, MLPConfig


def test_standardization_is_part_of_the_model():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[100.0, -5.0, 0.0], scale=[20.0, 0.1, 1.0], size=(200, 3)).astype(np.float32)
    x[:, 2] = 7.0  # a constant column is centred, never divided by zero
    model = MLP(MLPConfig(in_features=3, num_classes=2)).fit_normalization(x)
    z = model.normalize(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(z[:, :2].mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z[:, :2].std(0), 1.0, atol=1e-3)
    np.testing.assert_allclose(z[:, 2], 0.0, atol=1e-6)
    assert model(torch.from_numpy(x)).shape == (200, 2)
    assert model.latent_dim == 32 and model.classifier.in_features == 32


def test_spec_and_weights_round_trip(tmp_path):
    x = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32) * 3 + 1
    model = MLP(MLPConfig(in_features=4, num_classes=3, hidden=(8,))).fit_normalization(x).eval()
    spec = persist.model_spec(model, model.config)
    spec = json.loads(json.dumps(spec))  # as run.json stores it
    assert spec["class"] == "samplescope.models.mlp.MLP"
    persist.save_weights(model, tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = persist.load_weights(tmp_path, {"model": spec}, None, lambda: MLP, lambda: False).eval()
    assert loaded.config == model.config
    t = torch.from_numpy(x)
    torch.testing.assert_close(loaded(t), model(t))


def test_bad_config_says_which_field():
    with pytest.raises(ValueError, match="in_features"):
        MLP(MLPConfig(in_features=0))
    with pytest.raises(ValueError, match="4 features"):
        MLP(MLPConfig(in_features=3)).fit_normalization(np.zeros((5, 4)))

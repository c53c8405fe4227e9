"""Attribution against Captum called directly on the same model and input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
from torch import nn

from samplescope.analysis.attribution import Attribution, default_gradcam_layer, gradcam_batch
from samplescope.errors import NotFoundError, SamplescopeError

torch.set_num_threads(1)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.last_conv = nn.Conv2d(4, 6, 3, padding=1)
        self.classifier = nn.Linear(6 * 6 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))  # (B, 4, 12, 12)
        x = nn.functional.max_pool2d(torch.relu(self.last_conv(x)), 2)  # (B, 6, 6, 6)
        return self.classifier(x.flatten(1))


@pytest.fixture
def model() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN().eval()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(3, 2, 12, 12, generator=torch.Generator().manual_seed(1))


def captum_reference(model, method, x, target):
    x = x.clone().requires_grad_(True)
    if method == "gradcam":
        cam = LayerGradCam(model, model.last_conv).attribute(
            x, target=target, relu_attributions=True
        )
        return LayerAttribution.interpolate(cam, (12, 12), "bilinear")[:, 0]
    if method == "integrated_gradients":
        attr = IntegratedGradients(model).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=50, method="gausslegendre"
        )
        return attr.sum(1)
    return Saliency(model).attribute(x, target=target, abs=True).amax(1)


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients", "saliency"])
def test_matches_captum(model, x, method) -> None:
    expected = captum_reference(model, method, x, 2).detach().numpy()
    attr = Attribution(model, method)
    batch = attr.attribute(x, target=2)
    assert batch.shape == (3, 12, 12) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, expected, rtol=1e-5, atol=1e-6)
    single = attr.attribute(x[1].numpy(), target=2)  # numpy (C, H, W) -> (H, W)
    assert single.shape == (12, 12)
    np.testing.assert_allclose(single, expected[1], rtol=1e-5, atol=1e-6)
    if method != "integrated_gradients":
        assert (batch >= 0).all()


def test_per_sample_targets_and_gradcam_batch(model, x) -> None:
    targets = torch.tensor([0, 4, 1])
    expected = captum_reference(model, "gradcam", x, targets).detach().numpy()
    np.testing.assert_allclose(
        Attribution(model, "gradcam").attribute(x, targets), expected, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        gradcam_batch(model, x, targets.numpy(), batch_size=2), expected, rtol=1e-5, atol=1e-6
    )


def test_gradcam_batch_several_targets_per_input(model, x) -> None:
    targets = np.array([[0, 0], [4, 1], [2, 2]])  # repeated targets are copied, not recomputed
    maps = gradcam_batch(model, x, targets, batch_size=2)
    assert maps.shape == (3, 2, 12, 12) and maps.dtype == np.float32
    for j in range(2):
        expected = captum_reference(model, "gradcam", x, torch.from_numpy(targets[:, j]))
        np.testing.assert_allclose(maps[:, j], expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gradcam_batch(model, x, 3), gradcam_batch(model, x, [3, 3, 3]))
    with pytest.raises(NotFoundError, match=r"target class 9"):
        gradcam_batch(model, x, [[0, 9]] * 3)
    with pytest.raises(SamplescopeError, match=r"\(B, T\) for B=3"):
        gradcam_batch(model, x, [0, 1])


def test_no_side_effects(model, x) -> None:
    model.train()
    before = x.clone()
    for method in ("gradcam", "integrated_gradients", "saliency"):
        Attribution(model, method).attribute(x, target=1)
    gradcam_batch(model, x, [[1, 2]] * 3)
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())  # no gradient leaks
    assert not x.requires_grad and torch.equal(x, before)
    assert not model.last_conv._forward_hooks


def test_works_under_inference_mode(model, x) -> None:
    with torch.inference_mode():
        heat = Attribution(model, "saliency").attribute(x, target=0)
    assert heat.shape == (3, 12, 12)


def test_default_layer(model) -> None:
    assert default_gradcam_layer(model) == "last_conv"
    model.gradcam_layer = "conv1"
    assert default_gradcam_layer(model) == "conv1"
    with pytest.raises(SamplescopeError, match="no nn.Conv2d"):
        default_gradcam_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


def test_errors(model, x) -> None:
    with pytest.raises(NotFoundError, match=r"target class 5 .*\[0, 4\]"):
        Attribution(model, "saliency").attribute(x, target=5)
    with pytest.raises(NotFoundError, match=r"'nope'.*conv1, last_conv, classifier"):
        Attribution(model, "gradcam", layer="nope").attribute(x, target=0)
    with pytest.raises(SamplescopeError, match="unknown"):
        Attribution(model, "occlusion").attribute(x, target=0)  # type: ignore[arg-type]
    with pytest.raises(SamplescopeError, match=r"\(C, H, W\)"):
        Attribution(model, "saliency").attribute(x[0, 0], target=0)


# --------------------------------------------------------------------------- vectors and tokens


def _mlp():
    from samplescope.models.mlp import MLP, MLPConfig

    torch.manual_seed(0)
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(2)) * 3 + 5
    return MLP(MLPConfig(in_features=6, num_classes=3, hidden=(8,))).fit_normalization(x).eval(), x[:4]


def _tokens():
    from samplescope.models.tokens import TokenClassifier, TokenConfig

    torch.manual_seed(0)
    model = TokenClassifier(TokenConfig(vocab_size=12, num_classes=3, embed_dim=5)).eval()
    ids = torch.tensor([[3, 4, 5, 0, 0], [1, 1, 2, 11, 7], [9, 0, 0, 0, 0]], dtype=torch.float32)
    return model, ids


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency"])
def test_vector_matches_captum(method) -> None:
    model, x = _mlp()
    baseline = model.normalize.mean.clone()
    ref_x = x.clone().requires_grad_(True)
    if method == "integrated_gradients":
        expected = IntegratedGradients(model).attribute(
            ref_x, baselines=baseline.expand_as(ref_x), target=1, n_steps=50, method="gausslegendre"
        )
    else:
        expected = Saliency(model).attribute(ref_x, target=1, abs=True)
    attr = Attribution(model, method, input_kind="vector", baseline=baseline.numpy())
    got = attr.attribute(x.numpy(), target=1)
    assert got.shape == (4, 6)
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(attr.attribute(x[2], target=1), got[2], rtol=1e-5, atol=1e-6)
    if method == "integrated_gradients":  # completeness: the sum is f(x) - f(baseline)
        with torch.no_grad():
            gap = model(x)[:, 1] - model(baseline[None])[0, 1]
        np.testing.assert_allclose(got.sum(1), gap.numpy(), atol=1e-2)  # 50 steps over ReLU kinks


def test_tokens_match_captum_layer_integrated_gradients() -> None:
    from captum.attr import LayerIntegratedGradients

    model, ids = _tokens()
    expected = LayerIntegratedGradients(model, model.embedding).attribute(
        ids, baselines=torch.zeros_like(ids), target=torch.tensor([0, 2, 1]), n_steps=50, method="gausslegendre"
    ).sum(-1)
    got = Attribution(model, "integrated_gradients", input_kind="tokens").attribute(ids, target=[0, 2, 1])
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(got[:, -1][ids[:, -1].numpy() == 0] == 0)  # padding carries nothing
    one = Attribution(model, "integrated_gradients", input_kind="tokens").attribute(ids[1].numpy(), target=2)
    np.testing.assert_allclose(one, got[1], rtol=1e-5, atol=1e-6)


def test_methods_that_do_not_apply_say_why() -> None:
    from samplescope.analysis.attribution import applicable_methods
    from samplescope.errors import ParameterError

    mlp, x = _mlp()
    assert applicable_methods("vector") == {
        "gradcam": applicable_methods("vector")["gradcam"], "integrated_gradients": None, "saliency": None,
    }
    assert "convolution" in applicable_methods("vector")["gradcam"]
    assert applicable_methods("tokens")["saliency"] and applicable_methods("tokens")["integrated_gradients"] is None
    assert applicable_methods("image", mlp)["gradcam"]  # an image model with no conv
    with pytest.raises(ParameterError, match=r"Grad-CAM does not apply to MLP on vector inputs.*Integrated Gradients"):
        Attribution(mlp, "gradcam", input_kind="vector").attribute(x, target=0)
    with pytest.raises(ParameterError, match=r"vector inputs must be \(F,\) or \(B, F\), got shape \(1, 2, 3\)"):
        Attribution(mlp, "saliency", input_kind="vector").attribute(np.zeros((1, 2, 3)), target=0)
    with pytest.raises(ParameterError, match="pass input_kind='vector'"):
        Attribution(mlp, "integrated_gradients").attribute(x, target=0)  # the old image-only error, with its fix
    model, ids = _tokens()
    with pytest.raises(ParameterError, match="not differentiable"):
        Attribution(model, "saliency", input_kind="tokens").attribute(ids, target=0)
    with pytest.raises(ParameterError, match="baseline has shape"):
        Attribution(mlp, "integrated_gradients", input_kind="vector", baseline=np.zeros(3)).attribute(x, target=0)

"""The built-in tabular example end to end: train an MLP, analyse, serve, report.

Metrics are checked against scikit-learn's own on the stored predictions, and the
attributions the API serves against Captum's IntegratedGradients called directly.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from samplescope.integration.loader import load_integration


@pytest.fixture(scope="module")
def run_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.pipeline.train import train_run

    path = train_run("breast_cancer", tmp_path_factory.mktemp("bc") / "run", progress=False, threads=1)
    analyze_run(path, progress=False, projection="pca")
    return path


@contextmanager
def api_client(run):
    """The app over ``run`` in process (the server tests' client, without their package)."""
    import warnings

    from samplescope.server import Settings, create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2.*")
        from fastapi.testclient import TestClient
    with TestClient(create_app(run, Settings(prewarm=False)), base_url="http://127.0.0.1:8765") as client:
        yield client


def test_integration_is_a_vector_with_named_features() -> None:
    integ = load_integration("breast_cancer")
    assert integ.input_kind == "vector"
    assert integ.check().ok
    assert len(integ.get_subset("train")) == 455 and len(integ.get_subset("validation")) == 114
    assert integ.input_spec.feature_names[0] == "mean radius"


def test_feature_picture_reads_at_thumbnail_size() -> None:
    """Without a visualizer a row is drawn as a bar strip of its z-scores against the training rows
    and its five most atypical features in a large font, in a square (a 30-row table was
    500 pixels tall and shrank to a grey patch in the page's thumbnails), the strip's bars red above
    the training mean and blue below, the named features those of the largest |z| by numpy."""
    from samplescope.integration.pictures import PAD, STRIP, WIDTH, top_features
    from samplescope.palette import palette, rgb

    integ = load_integration("breast_cancer")
    train = integ.encode_inputs("train", np.arange(len(integ.get_subset("train"))))
    mean, std = integ.feature_stats()
    np.testing.assert_allclose(mean, train.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std, train.std(axis=0), rtol=1e-4)
    x = integ.encode_inputs("validation", [7])[0].astype(np.float64)
    z = (x - train.mean(axis=0)) / train.std(axis=0)
    assert top_features(z) == list(np.argsort(-np.abs(z))[:5])

    picture = integ.visualize("validation", 7)
    assert picture.shape == (WIDTH, WIDTH, 3)  # square, like the page's thumbnails: no letterbox
    step, mid = (WIDTH - 2 * PAD) / 30, PAD + STRIP // 2
    for i in np.flatnonzero(np.abs(z) > 0.5):  # the bar of feature i, just off the zero line
        column = picture[mid - 3 if z[i] > 0 else mid + 3, int(PAD + (i + 0.5) * step)]
        np.testing.assert_array_equal(column, rgb(palette()["positive" if z[i] > 0 else "negative"]))


def test_trains_an_mlp_with_sensible_results(run_path: Path) -> None:
    from sklearn.metrics import accuracy_score, confusion_matrix

    from samplescope.run import open_run

    run = open_run(run_path)
    assert run.info["model"]["class"] == "samplescope.models.mlp.MLP"
    assert run.input_kind == "vector" and run.feature_names[:2] == ["mean radius", "mean texture"]
    frame = run.samples(subset="validation")
    m = run.metrics()
    assert m["accuracy"] == pytest.approx(accuracy_score(frame["label"], frame["prediction"]))
    np.testing.assert_array_equal(m["confusion"], confusion_matrix(frame["label"], frame["prediction"], labels=[0, 1]))
    assert m["accuracy"] > 0.9  # logistic regression on the same split: 98.2%
    # the MLP standardises inside: its buffers are the training features' mean and std
    integ = load_integration("breast_cancer")
    x = integ.encode_inputs("train", np.arange(455))
    np.testing.assert_allclose(run.model().normalize.mean.numpy(), x.mean(0), rtol=1e-4)


def test_api_offers_only_methods_that_apply_and_serves_feature_bars(run_path: Path) -> None:
    from captum.attr import IntegratedGradients

    from samplescope.run import open_run
    run = open_run(run_path)
    with api_client(run) as client:
        info = client.get("/api/run").json()
        assert info["input_kind"] == "vector"
        assert info["attribution"]["integrated_gradients"] is None and info["attribution"]["saliency"] is None
        assert "convolution" in info["attribution"]["gradcam"]
        heat = client.get("/api/samples/3/heatmap.json", params={"method": "integrated_gradients", "target": 1}).json()
        assert heat["labels"] == run.feature_names and len(heat["values"]) == 30
        model = run.model()
        x = torch.from_numpy(run.input(3))[None].requires_grad_(True)
        expected = IntegratedGradients(model).attribute(
            x, baselines=model.normalize.mean[None], target=1, n_steps=50, method="gausslegendre"
        )[0]
        np.testing.assert_allclose(heat["values"], expected.detach().numpy(), rtol=1e-4, atol=1e-5)
        refused = client.get("/api/samples/3/heatmap.png", params={"method": "gradcam"})
        assert refused.status_code == 422
        assert "Grad-CAM" in refused.json()["detail"] and "integrated_gradients" in refused.json()["detail"]
        png = client.get("/api/samples/3/heatmap.png", params={"method": "saliency"})
        assert png.status_code == 422 and "heatmap.json" in png.json()["detail"]
        picture = client.get("/api/samples/3/image.png")  # the feature table the page shows
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"


def test_report_without_a_visualizer(run_path: Path, tmp_path: Path) -> None:
    from samplescope.report.build import build_report

    out = build_report(run_path, tmp_path / "report", progress=False)
    html = (out / "report.html").read_text()
    assert "Attributions of sample #" in html and "one value per feature" in html
    assert "Traceback" not in html

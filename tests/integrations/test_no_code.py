"""Integrations without code: from_arrays, from_dataframe, from_image_folder, end to end.

Each is trained with the default model for its input kind, reopened from the run
folder alone (arrays from the run's .npy copy, images from their folder), analysed
and reported without a visualizer where it has none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from samplescope.errors import IntegrationError, ParameterError
from samplescope.integrations import from_arrays, from_dataframe, from_image_folder


def _analyse_and_report(path: Path, tmp_path: Path) -> str:
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.report.build import build_report

    analyze_run(path, progress=False, projection="pca")
    return (build_report(path, tmp_path / "report", progress=False) / "report.html").read_text()


def _metrics_match_sklearn(run, subset: str = "validation") -> dict:
    """run.metrics() of a classification run against scikit-learn's own functions on its stored rows."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        log_loss,
        precision_score,
        recall_score,
    )

    classes = list(range(len(run.classes)))
    frame = run.samples(subset=subset)
    y, p = frame["label"].to_numpy(), frame["prediction"].to_numpy()
    m = run.metrics(subset)
    assert m["count"] == len(frame) and m["accuracy"] == pytest.approx(accuracy_score(y, p))
    np.testing.assert_array_equal(m["confusion"], confusion_matrix(y, p, labels=classes))
    per_class = m["per_class"]
    np.testing.assert_allclose(per_class["precision"], precision_score(y, p, labels=classes, average=None,
                                                                       zero_division=np.nan), equal_nan=True)  # fmt: skip
    np.testing.assert_allclose(per_class["recall"], recall_score(y, p, labels=classes, average=None))
    probs = frame[[f"prob_{k}" for k in classes]].to_numpy(np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)  # stored as float32: off one by ~1e-7, which log_loss refuses
    assert m["mean_loss"] == pytest.approx(log_loss(y, probs, labels=classes), rel=1e-3, abs=1e-5)
    return m


# --------------------------------------------------------------------------- data frames and arrays


def _frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"age": rng.integers(20, 80, n), "bmi": rng.normal(25, 4, n), "noise": rng.normal(size=n)})
    df["city"] = rng.choice(["north", "south"], n)
    df["outcome"] = np.where(df["bmi"] + 0.05 * df["age"] > 27.5, "sick", "well")
    df["split"] = np.where(np.arange(n) < 180, "train", "val")
    return df


def test_from_dataframe_trains_an_mlp_and_reopens_from_the_run_folder(tmp_path: Path) -> None:
    """Trained, reopened from the run folder alone, analysed, reported and served: metrics equal
    scikit-learn's, the served attributions Captum's IntegratedGradients from the MLP's training mean."""
    from captum.attr import IntegratedGradients

    from samplescope.pipeline.train import train_run
    from samplescope.run import open_run

    df = _frame()
    integ = from_dataframe(df, inputs=["age", "bmi", "noise"], target="outcome", subset="split")
    assert integ.classes == ["sick", "well"] and integ.input_kind == "vector"
    assert integ.check().ok
    np.testing.assert_array_equal(
        integ.encode_labels("validation", np.arange(60)), (df["outcome"][180:] == "well").astype(int)
    )
    path = train_run(integ, tmp_path / "df", progress=False, threads=1)
    assert sorted(p.name for p in (path / "arrays").iterdir())[:3] == ["index.json", "train.meta_city.npy", "train.x.npy"]
    run = open_run(path)  # no integration passed: rebuilt from arrays/, running nothing from the folder
    assert run.trusted and run.info["model"]["class"] == "samplescope.models.mlp.MLP"
    assert run.feature_names == ["age", "bmi", "noise"]
    np.testing.assert_allclose(run.input(185), df.loc[185, ["age", "bmi", "noise"]].to_numpy(np.float32))
    heat = run.heatmap(185, target=0, method="integrated_gradients")
    assert heat.shape == (3,) and abs(heat[2]) < max(abs(heat[0]), abs(heat[1]))  # the noise column matters least
    with pytest.raises(ParameterError, match=r"run.heatmap\(sample 185, method='gradcam'\).*use method="):
        run.heatmap(185, method="gradcam")
    assert run.image(0).dtype == np.uint8  # the feature table picture
    run.close()

    html = _analyse_and_report(path, tmp_path)
    assert "one value per feature" in html and "Traceback" not in html
    run = open_run(path)
    assert _metrics_match_sklearn(run)["accuracy"] > 0.8
    model = run.model().eval()
    run.close()
    with _served(path) as client:
        assert client.get("/api/run").json()["input_kind"] == "vector"
        heat = client.get("/api/samples/185/heatmap.json", params={"method": "integrated_gradients",
                                                                   "target": "sick"}).json()  # fmt: skip
        x = torch.from_numpy(df.loc[[185], ["age", "bmi", "noise"]].to_numpy(np.float32))
        expected = IntegratedGradients(model).attribute(x, baselines=model.normalize.mean[None], target=0, n_steps=50,
                                                        method="gausslegendre")[0].detach().numpy()  # fmt: skip
        assert heat["labels"] == ["age", "bmi", "noise"] and np.abs(expected).max() > 1e-3
        np.testing.assert_allclose(heat["values"], expected, rtol=1e-4, atol=1e-5)
        assert client.get("/api/samples/185/image.png").headers["content-type"] == "image/png"


def test_a_curated_run_from_arrays_reopens_with_its_new_labels(tmp_path: Path) -> None:
    """`train --relabel/--exclude` on in-memory arrays: the run folder's copy of the arrays holds the
    new labels and each sample's fate, so the run reopened (and re-analysed) from it alone has them."""
    from samplescope.curation import curate
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.pipeline.train import train_run
    from samplescope.run import open_run

    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    integ = from_arrays(x[:90], y[:90], x[90:], y[90:], classes=["no", "yes"])
    flipped = [2, 5, 95]  # two training rows and one validation row (sample ids = row order)
    pd.DataFrame({"sample_id": flipped, "new_label": [["yes", "no"][y[i]] for i in flipped]}).to_csv(
        tmp_path / "relabel.csv", index=False)
    pd.DataFrame({"sample_id": [7, 8]}).to_csv(tmp_path / "exclude.csv", index=False)
    curated = curate(integ, relabel=tmp_path / "relabel.csv", exclude=[tmp_path / "exclude.csv"])
    path = train_run(curated, tmp_path / "curated", progress=False, threads=1, epochs=2)
    analyze_run(path, progress=False, projection="pca")

    run = open_run(path)  # no integration passed: rebuilt from arrays/
    rows = run.samples(columns=["sample_id", "label", "curation"]).set_index("sample_id")
    expected = y.copy()
    expected[flipped] = 1 - y[flipped]
    np.testing.assert_array_equal(rows["label"].to_numpy(), expected)
    assert rows.loc[flipped, "curation"].tolist() == ["relabelled"] * 3
    assert rows.loc[[7, 8], "curation"].tolist() == ["excluded"] * 2 and rows.loc[0, "curation"] == "kept"
    again = run.integration()
    np.testing.assert_array_equal(again.encode_labels("validation", [5]), [1 - y[95]])
    assert run.info["curation"]["relabel"]["samples"] == 3


VOCABULARY = ["<pad>", "the", "good", "bad", "movie", "plot", "was", "very"]


@pytest.fixture(scope="module")
def token_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """Synthetic token sequences: class 1 iff token 'good' (id 2) appears; padding is id 0.
    The trained and analysed run's folder, the (300, 6) ids and the classes (train rows 0-239,
    validation 240-299)."""
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.pipeline.train import train_run

    rng = np.random.default_rng(0)
    ids = rng.integers(3, len(VOCABULARY), size=(300, 6))
    y = rng.integers(0, 2, 300)
    ids[y == 1, rng.integers(0, 6, int(y.sum()))] = 2
    ids[rng.random((300, 6)) < 0.2] = 0
    ids[y == 1] = np.where(ids[y == 1] == 0, 1, ids[y == 1])
    integ = from_arrays(ids[:240], y[:240], ids[240:], y[240:], classes=["no", "yes"], vocabulary=VOCABULARY)
    assert integ.input_kind == "tokens"
    path = train_run(integ, tmp_path_factory.mktemp("tokens") / "run", progress=False, threads=1)
    analyze_run(path, progress=False, projection="pca")
    return path, ids, y


def test_from_arrays_tokens_train_analyse_and_report(token_run, tmp_path: Path) -> None:
    from samplescope.report.build import build_report
    from samplescope.run import open_run

    path, _, y = token_run
    run = open_run(path)
    assert run.info["model"]["class"] == "samplescope.models.tokens.TokenClassifier"
    assert run.attribution_methods()["integrated_gradients"] is None and run.attribution_methods()["saliency"]
    sid = int(np.flatnonzero(y[240:] == 1)[0]) + 240
    heat = run.heatmap(sid, target=1, method="integrated_gradients")
    tokens = run.attribution_labels(sid)
    assert len(tokens) == 6 and heat.shape == (6,)
    assert tokens[int(np.argmax(heat))] == "good"  # the word that decides the class gets the most credit
    assert _metrics_match_sklearn(run)["accuracy"] > 0.9
    run.close()
    html = (build_report(path, tmp_path / "report", progress=False) / "report.html").read_text()
    assert "one value per token" in html


def test_from_arrays_grey_non_square_images_without_a_visualizer(tmp_path: Path) -> None:
    """(N, H, W) uint8 arrays 12 x 20: a channel axis is added, the CNN adapts, the picture is the input."""
    from samplescope.pipeline.train import train_run

    rng = np.random.default_rng(1)
    x = rng.integers(0, 60, size=(160, 12, 20)).astype(np.uint8)
    y = rng.integers(0, 2, 160)
    x[y == 1, :, 10:] += 150  # class 1: a bright right half
    integ = from_arrays(x[:120], y[:120], x[120:], y[120:])
    assert integ.input_kind == "image" and integ.encode_inputs("train", [0]).shape == (1, 1, 12, 20)
    assert integ.visualize("train", 0).shape == (12, 20)
    path = train_run(integ, tmp_path / "grey", progress=False, threads=1, recipe="fast", epochs=3)
    from samplescope.run import open_run

    run = open_run(path)
    assert run.info["model"]["config"]["input_size"] == 12
    assert run.heatmap(121, method="gradcam").shape == (12, 20)


# --------------------------------------------------------------------------- image folders


def _image_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for subset, n in (("train", 12), ("val", 4)):
        for cls, channel in (("cats", 0), ("dogs", 2)):
            folder = root / subset / cls
            folder.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 80, size=(24, 36, 3)).astype(np.uint8)
                a[..., channel] += 160
                name = folder / (f"{i}.png" if i % 2 else f"{i}.jpg")
                Image.fromarray(a).save(name)
    (root / "train" / "cats" / "notes.txt").write_text("not an image")  # ignored
    return root


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The RGB image folder, and a run trained on it from the command line
    (``samplescope train --integration image-folder:PATH``), analysed with every sample's
    Grad-CAM precomputed (``--heatmaps all``)."""
    from samplescope.cli import main

    tmp = tmp_path_factory.mktemp("folder")
    root, path = _image_folder(tmp / "pets"), tmp / "pets-run"
    assert main(["train", "--integration", f"image-folder:{root}", "--out", str(path), "--recipe", "fast",
                 "--epochs", "4", "--threads", "1", "--device", "cpu"]) == 0  # fmt: skip
    assert main(["analyze", str(path), "--projection", "pca", "--heatmaps", "all", "--device", "cpu"]) == 0
    return root, path


def test_from_image_folder_rgb_end_to_end(folder_run, tmp_path: Path) -> None:
    from samplescope.cli import main
    from samplescope.integration.loader import load_integration
    from samplescope.run import open_run

    root, path = folder_run
    integ = from_image_folder(root)
    assert integ.classes == ["cats", "dogs"] and integ.subset_names == ["train", "validation"]
    assert integ.input_kind == "image" and integ.encode_inputs("train", [0, 13]).shape == (2, 3, 24, 36)
    assert integ.visualize("validation", 0).shape == (24, 36, 3)
    assert integ.compute_metadata("train", [0])["width"][0] == 36
    assert integ.check().ok
    assert load_integration(f"image-folder:{root}").classes == ["cats", "dogs"]  # the CLI's spec
    run = open_run(path)
    config = run.info["model"]["config"]
    assert config["in_channels"] == 3 and len(config["input_mean"]) == 3  # per-channel normalisation
    assert config["input_mean"][0] != config["input_mean"][1]
    assert _metrics_match_sklearn(run)["accuracy"] > 0.9  # red cats, blue dogs
    run.close()
    assert main(["check", f"image-folder:{root}"]) == 0
    assert main(["report", str(path), "--out", str(tmp_path / "report")]) == 0
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Heatmaps of sample" in html and "Highest-loss" in html and "Traceback" not in html


def test_errors_say_what_and_how_to_fix(tmp_path: Path) -> None:
    from samplescope.pipeline.train import train_run

    with pytest.raises(IntegrationError, match=r"has no val/ or validation/ folder"):
        (tmp_path / "x" / "train" / "a").mkdir(parents=True)
        from_image_folder(tmp_path / "x")
    root = _image_folder(tmp_path / "broken")
    (root / "val" / "dogs" / "bad.png").write_bytes(b"not a png")
    integ = from_image_folder(root)
    with pytest.raises(IntegrationError, match=r"bad.png cannot be read as an image.*delete or replace"):
        integ.encode_inputs("validation", np.arange(len(integ.get_subset("validation"))))
    df = _frame()
    with pytest.raises(IntegrationError, match=r"columns \['weight'\] are not in the data frame"):
        from_dataframe(df, inputs=["weight"], target="outcome")
    with pytest.raises(IntegrationError, match=r"\['city'\] are not numbers; one-hot encode"):
        from_dataframe(df, inputs=["age", "city"], target="outcome")
    with pytest.raises(IntegrationError, match=r"subset 'train' has 3 inputs but 2 targets"):
        from_arrays(np.zeros((3, 2)), [0, 1], np.zeros((1, 2)), [0])
    with pytest.raises(IntegrationError, match=r"targets run from 0 to 2 but there are 2 classes"):
        from_arrays(np.zeros((3, 2)), [0, 1, 2], np.zeros((1, 2)), [0], classes=["a", "b"])
    with pytest.raises(ParameterError, match=r"--model cnn takes \(C, H, W\) images.*--model mlp"):
        train_run(from_dataframe(df, inputs=["age"], target="outcome"), tmp_path / "r", model="cnn", progress=False)
    assert not (tmp_path / "r").exists()


def test_from_arrays_regression_targets(tmp_path: Path) -> None:
    """task='regression': float targets go through as they are; metrics equal scikit-learn's."""
    from sklearn.metrics import r2_score

    from samplescope.pipeline.analyze import analyze_run
    from samplescope.pipeline.train import train_run
    from samplescope.run import open_run

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    t = (2 * x[:, 0] - x[:, 1] + 0.1 * rng.normal(size=200)).astype(np.float32)
    integ = from_arrays(x[:160], t[:160], x[160:], t[160:], task="regression")
    assert integ.task.name == "regression" and integ.check().ok
    path = train_run(integ, tmp_path / "reg", progress=False, threads=1)
    analyze_run(path, progress=False, projection="pca")
    run = open_run(path)  # rebuilt from arrays/
    frame = run.samples(subset="validation")
    assert run.metrics()["r2"] == pytest.approx(r2_score(frame["label"], frame["prediction"]), rel=1e-6)
    assert run.metrics()["r2"] > 0.9
    heat = run.heatmap(int(frame["sample_id"].iloc[0]), method="integrated_gradients")
    assert np.argmax(np.abs(heat)) in (0, 1)  # the two columns the target is made of


def _grid_integration(name: str, grids: np.ndarray, n_train: int):
    """Two classes (id parity) of (H, W) grids: the first ``n_train`` train, the rest validation."""
    from samplescope import Integration, Subset

    integ = Integration(name, classes=["a", "b"])
    integ.subset("train")(lambda state: Subset(ids=range(n_train)))
    integ.subset("validation")(lambda state: Subset(ids=range(n_train, len(grids))))
    integ.input("grid")(lambda sample: grids[sample.id])
    integ.ground_truth(lambda sample: int(sample.id % 2))
    return integ


def test_create_run_keeps_taking_any_input_shape(tmp_path: Path) -> None:
    """A model brought in may take (H, W) inputs, neither an image (C, H, W) nor a vector: still a run."""
    import torch

    from samplescope import create_run
    from samplescope.run import open_run

    grids = np.random.default_rng(0).random((20, 4, 4)).astype(np.float32)
    integ = _grid_integration("grids", grids, n_train=15)  # (4, 4)
    with pytest.raises(IntegrationError, match=r"encodes shape \(4, 4\).*x\[None\]"):
        integ.input_kind  # noqa: B018
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    path = create_run(integ, model, tmp_path / "grids", progress=False)
    run = open_run(path, integration=integ, model=model)
    assert run.info["input"] == {"kind": None, "shape": [4, 4]} and run.input_kind == "image"


class ChannellessNet:
    """A brought CNN whose forward takes grey images (N, H, W) without a channel axis."""

    def __new__(cls):
        import torch

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
                self.head = torch.nn.Linear(4, 2)

            def forward(self, x):  # (N, H, W)
                return self.head(torch.relu(self.conv(x[:, None])).mean(dim=(2, 3)))

        torch.manual_seed(0)
        return Net()


def test_create_run_with_channelless_images_shows_and_explains_them(tmp_path: Path) -> None:
    """(H, W) inputs to a model that takes (N, H, W): the picture is the grey image and every method
    explains it, Integrated Gradients equal to Captum's on the model's own input."""
    import torch
    from captum.attr import IntegratedGradients

    from samplescope import create_run
    from samplescope.run import open_run

    grids = np.random.default_rng(1).random((24, 6, 6)).astype(np.float32)
    integ = _grid_integration("grey-grids", grids, n_train=18)  # (6, 6)
    model = ChannellessNet()
    path = create_run(integ, model, tmp_path / "grey", progress=False)
    run = open_run(path, integration=integ, model=model)
    np.testing.assert_array_equal(run.image(20), np.round(grids[20] * 255).astype(np.uint8))
    assert all(why is None for why in run.attribution_methods().values())
    for method in ("gradcam", "saliency"):
        assert run.heatmap(20, target=1, method=method).shape == (6, 6)
    x = torch.from_numpy(grids[20][None])
    expected = IntegratedGradients(model.eval()).attribute(x, baselines=torch.zeros_like(x), target=1, n_steps=50,
                                                           method="gausslegendre")[0].detach().numpy()  # fmt: skip
    np.testing.assert_allclose(run.heatmap(20, target=1, method="integrated_gradients"), expected, rtol=1e-4, atol=1e-6)


def test_token_picture_leaves_padding_out_and_is_square() -> None:
    """A padded sentence is drawn exactly as the same words without padding, in a square picture."""
    from samplescope.integration.pictures import token_text

    vocabulary = ["<pad>", "the", "good", "bad", "movie", "plot", "was", "very"]
    padded, plain = token_text(np.array([0, 1, 2, 0, 4, 6, 0, 0]), vocabulary), token_text(np.array([1, 2, 4, 6]), vocabulary)
    np.testing.assert_array_equal(padded, plain)
    assert padded.shape[0] == padded.shape[1] and (padded < 128).any()  # square, with ink


# --------------------------------------------------------------------------- attributions against Captum


def _served(path: Path):
    """The app over the run folder in process, on a loopback base URL (the server's Host check)."""
    import warnings

    from samplescope.server import Settings, create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2.*")
        from fastapi.testclient import TestClient
    return TestClient(create_app(path, Settings(prewarm=False)), base_url="http://127.0.0.1:8765")


def test_token_run_attributions_are_captums_layer_integrated_gradients(token_run) -> None:
    """run.heatmap and the served heatmap.json of a tokens run equal Captum's LayerIntegratedGradients
    through the model's nn.Embedding, from an all-padding baseline, summed over the embedding, for
    the ids the run was made from (not the run's own copy of them)."""
    import torch
    from captum.attr import LayerIntegratedGradients

    from samplescope.run import open_run

    path, ids, y = token_run
    run = open_run(path)
    model = run.model().eval()
    (embedding,) = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    lig = LayerIntegratedGradients(model, embedding)
    samples = [240 + int(np.flatnonzero(y[240:] == 1)[0]), 240 + int(np.flatnonzero(y[240:] == 0)[0])]
    for sid in samples:
        x = torch.from_numpy(ids[sid][None]).long()  # (1, T)
        for target in (0, 1):
            expected = lig.attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=50,
                                     method="gausslegendre").sum(-1)[0].detach().numpy()  # fmt: skip
            assert np.abs(expected).max() > 1e-3  # a real signal, so equality below means something
            np.testing.assert_allclose(run.heatmap(sid, target=target, method="integrated_gradients"), expected,
                                       rtol=1e-4, atol=1e-6)  # fmt: skip
    run.close()
    sid = samples[0]
    with _served(path) as client:
        heat = client.get(f"/api/samples/{sid}/heatmap.json", params={"method": "integrated_gradients",
                                                                      "target": "yes"}).json()  # fmt: skip
        assert heat["target"] == 1 and heat["shape"] == [6]
        assert heat["labels"] == [VOCABULARY[i] for i in ids[sid]] and heat["padding"] == (ids[sid] == 0).tolist()
        x = torch.from_numpy(ids[sid][None]).long()
        expected = lig.attribute(x, baselines=torch.zeros_like(x), target=1, n_steps=50,
                                 method="gausslegendre").sum(-1)[0].detach().numpy()  # fmt: skip
        np.testing.assert_allclose(heat["values"], expected, rtol=1e-4, atol=1e-5)
        refused = client.get(f"/api/samples/{sid}/heatmap.json", params={"method": "saliency"})
        assert refused.status_code == 422 and "integrated_gradients" in refused.json()["detail"]


def test_rgb_folder_run_attributions_are_captums(folder_run) -> None:
    """An RGB image-folder run's heatmaps, for the picture read from its file with Pillow: Grad-CAM is
    Captum's LayerGradCam on the last conv (ReLU, bilinear to H x W), for the predicted class (from
    the precomputed store) and the other (computed); Integrated Gradients (zero baseline) summed and
    saliency max-ed over the three channels; the served heatmap.json says the same."""
    import torch
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
    from PIL import Image

    from samplescope.run import GRADCAM_FILE, open_run

    root, path = folder_run
    run = open_run(path)
    assert (path / GRADCAM_FILE).exists()  # the predicted class's map below is read from it
    rows = run.samples(subset="validation", columns=["sample_id", "key", "prediction"])
    row = rows[rows["key"].str.endswith(".png")].iloc[0]  # lossless: the file is exactly the input
    sid, predicted = int(row["sample_id"]), int(row["prediction"])
    x = torch.from_numpy(np.asarray(Image.open(root / row["key"]).convert("RGB"), np.float32) / 255.0)
    x = x.permute(2, 0, 1)[None].contiguous().requires_grad_(True)  # (1, 3, 24, 36)
    np.testing.assert_allclose(run.input(sid), x[0].detach().numpy(), atol=1e-6)
    model = run.model().eval()
    last_conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]

    def gradcam(target: int) -> np.ndarray:
        cam = LayerGradCam(model, last_conv).attribute(x, target=target, relu_attributions=True)
        return LayerAttribution.interpolate(cam, x.shape[-2:], "bilinear")[0, 0].detach().numpy()

    for target in (predicted, 1 - predicted):
        expected = gradcam(target)
        got = run.heatmap(sid, target=target, method="gradcam")
        assert got.shape == (24, 36)
        scale = max(float(np.abs(expected).max()), 1e-6)
        np.testing.assert_allclose(got / scale, expected / scale, atol=2e-3)  # the store keeps float16
    assert np.abs(gradcam(predicted)).max() > 0
    for target in (0, 1):
        ig = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=50,
                                                  method="gausslegendre")[0].sum(0).detach().numpy()  # fmt: skip
        assert np.abs(ig).max() > 1e-3
        np.testing.assert_allclose(run.heatmap(sid, target=target, method="integrated_gradients"), ig, rtol=1e-4,
                                   atol=1e-6)  # fmt: skip
        sal = Saliency(model).attribute(x, target=target, abs=True)[0].amax(0).detach().numpy()
        assert np.abs(sal).max() > 0
        np.testing.assert_allclose(run.heatmap(sid, target=target, method="saliency"), sal, rtol=1e-4, atol=1e-7)
    run.close()
    classes = ["cats", "dogs"]
    with _served(path) as client:
        for method, expected in (("gradcam", gradcam(1 - predicted)), ("integrated_gradients", None)):
            heat = client.get(f"/api/samples/{sid}/heatmap.json",
                              params={"method": method, "target": classes[1 - predicted]}).json()  # fmt: skip
            assert heat["shape"] == [24, 36] and heat["target"] == 1 - predicted
            if expected is None:
                expected = IntegratedGradients(model).attribute(
                    x, baselines=torch.zeros_like(x), target=1 - predicted, n_steps=50, method="gausslegendre"
                )[0].sum(0).detach().numpy()
            np.testing.assert_allclose(heat["values"], expected, rtol=1e-4, atol=1e-5)
        png = client.get(f"/api/samples/{sid}/heatmap.png", params={"method": "saliency"})
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"


# --------------------------------------------------------------------------- inputs no picture draws


class VolumeNet(torch.nn.Module):
    """A brought model over (2, 3, 4, 4) inputs (two RGB 4 x 4 frames): one linear layer; at module
    level, so a run made with create_run can reload its class by name."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(96, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 2, 3, 4, 4)
        return self.fc(x.flatten(1))


def test_an_input_shape_no_picture_draws_degrades_with_its_message(tmp_path: Path) -> None:
    """(2, 3, 4, 4) inputs, no visualizer: analysis works; the picture, heatmaps, report and page say
    why there are none and what to declare, instead of a traceback or a broken image."""
    from samplescope import create_run
    from samplescope.errors import PictureError
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.report.build import build_report
    from samplescope.run import open_run

    volumes = np.random.default_rng(2).random((24, 2, 3, 4, 4)).astype(np.float32)
    integ = _grid_integration("volumes", volumes, n_train=18)
    torch.manual_seed(0)
    path = create_run(integ, VolumeNet(), tmp_path / "volumes", progress=False)
    analyze_run(path, progress=False, projection="pca", integration=integ, trust=True)
    run = open_run(path, integration=integ, trust=True)
    with pytest.raises(PictureError, match=r"visualize\(subset 'validation', index 2\): input 'grid' has shape "
                                           r"\(2, 3, 4, 4\).*declare @integ.visualizer"):  # fmt: skip
        run.image(20)
    why = run.attribution_methods()
    assert set(why) == {"gradcam", "integrated_gradients", "saliency"} and all("(2, 3, 4, 4)" in w for w in why.values())
    with pytest.raises(ParameterError, match=r"run.heatmap\(sample 20, method='saliency'\).*no heatmaps"):
        run.heatmap(20, method="saliency")
    run.close()

    html = (build_report(path, tmp_path / "report", progress=False, trust=True, integration=integ)
            / "report.html").read_text()  # fmt: skip
    assert "Traceback" not in html and html.count("figures with sample pictures are left out") == 1
    assert "declare @integ.visualizer" in html

    with _served(open_run(path, integration=integ, trust=True)) as client:
        info = client.get("/api/run").json()
        assert "(2, 3, 4, 4)" in info["pictures"] and all(info["attribution"].values())
        picture = client.get("/api/samples/20/image.png")
        assert picture.status_code == 400 and "declare @integ.visualizer" in picture.json()["detail"]
        for method in ("gradcam", "saliency"):
            heat = client.get("/api/samples/20/heatmap.png", params={"method": method})
            assert heat.status_code == 422 and "(2, 3, 4, 4)" in heat.json()["detail"]
        assert client.get("/api/samples/20").status_code == 200  # the row and its numbers are all there


def test_a_visualizer_that_returns_no_picture_is_named() -> None:
    from samplescope.errors import PictureError

    grids = np.random.default_rng(0).random((6, 1, 4, 4)).astype(np.float32)
    integ = _grid_integration("bad-visualizer", grids, n_train=4)
    integ.visualizer("image")(lambda sample: np.zeros((5, 4, 6)))
    with pytest.raises(PictureError, match=r"visualizer 'image' returned shape \(5, 4, 6\); return an \(H, W\)"):
        integ.visualize("train", 0)
    assert from_arrays(grids[:4, 0], [0, 1, 0, 1], grids[4:, 0], [0, 1]).visualize("train", 0).shape == (4, 4)

"""`analyze` and the Run API on a small real run, checked against references."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import samplescope
from samplescope.errors import IntegrationError, NotFoundError, ParameterError, RunError
from samplescope.pipeline.analyze import analyze_run
from samplescope.run import Run
from samplescope.store import layout
from samplescope.testing import make_tiny_run


@pytest.fixture(scope="module")
def run_path(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("tiny") / "digits")


@pytest.fixture(scope="module")
def run(run_path):
    return samplescope.open_run(run_path)


def test_samples_have_every_analysis_column(run):
    df = run.samples()
    for col in ["prediction", "loss", "confidence", "margin", "correct", "prob_0", "prob_9", "map_x", "map_y",
                "cluster", "mislabel_score", "outlier_score", "ink"]:
        assert col in df.columns, col
    probs = df[[f"prob_{k}" for k in range(10)]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(df["prediction"], probs.argmax(1))
    np.testing.assert_allclose(df["loss"], -np.log(probs[np.arange(len(df)), df["label"]]), rtol=1e-3, atol=1e-5)
    assert df["correct"].mean() > 0.8


def test_latent_is_the_classifier_input(run):
    latent = np.asarray(run.latent())
    df = run.samples()
    assert latent.shape[0] == len(df) and latent.dtype == np.float32
    model = run.model()
    assert not model.training and run.latent_layer == "classifier"
    ids = [0, 17, len(df) - 1]
    x = torch.from_numpy(np.stack([run.input(i) for i in ids]))
    with torch.no_grad():
        logits_from_latent = model.classifier(torch.from_numpy(latent[ids]))
        logits = model(x)
    np.testing.assert_allclose(logits_from_latent.numpy(), logits.numpy(), rtol=1e-4, atol=1e-4)


def test_similar_equals_brute_force(run):
    latent = np.asarray(run.latent(), dtype=np.float64)
    unit = latent / np.linalg.norm(latent, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    for sid in rng.choice(len(unit), 20, replace=False):
        got = run.similar(int(sid), k=5)
        sims = unit @ unit[sid]
        sims[sid] = -np.inf
        expected = np.sort(sims)[::-1][:5]
        np.testing.assert_allclose(got["similarity"], expected, atol=1e-5)
        np.testing.assert_allclose(sims[got["sample_id"].to_numpy()], expected, atol=1e-5)


def test_similar_restricted_to_a_subset(run):
    got = run.similar(3, k=7, subset="validation")
    assert len(got) == 7 and (got["subset"] == "validation").all()
    s = run.similar_to_set([1, 2, 3], k=4)
    assert len(s) == 4 and not set(s["sample_id"]) & {1, 2, 3}


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_heatmaps_equal_captum_called_directly(run):
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency

    model = run.model()
    x = torch.from_numpy(run.input(11))[None]
    layer = dict(model.named_modules())[run.info["gradcam_layer"]]
    cam = LayerGradCam(model, layer).attribute(x, target=4, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear")[0, 0].detach().numpy()
    np.testing.assert_allclose(run.heatmap(11, target=4, method="gradcam"), cam, rtol=1e-4, atol=1e-6)
    ig = IntegratedGradients(model).attribute(x, target=4, n_steps=50).sum(1)[0].detach().numpy()
    np.testing.assert_allclose(run.heatmap(11, target=4, method="integrated_gradients"), ig, rtol=1e-3, atol=1e-6)
    sal = Saliency(model).attribute(x, target=4, abs=True).amax(1)[0].detach().numpy()
    np.testing.assert_allclose(run.heatmap(11, target=4, method="saliency"), sal, rtol=1e-4, atol=1e-7)


def test_heatmaps_are_cached_in_the_run_folder(run_path, tmp_path, monkeypatch):
    path = tmp_path / "copy"
    shutil.copytree(run_path, path)
    first = samplescope.open_run(path).heatmap(5, target=2, method="integrated_gradients")
    assert (path / "heatmaps" / "integrated_gradients-5-2.npy").exists()

    def no_compute(self, method):
        raise AssertionError("the cached heatmap should have been read, not computed")

    monkeypatch.setattr(Run, "_attribution", no_compute)
    again = samplescope.open_run(path).heatmap(5, target=2, method="integrated_gradients")
    np.testing.assert_array_equal(again, first)
    monkeypatch.undo()
    analyze_run(path, projection="pca", progress=False)  # a new analysis drops the cache
    assert not (path / "heatmaps").exists()


def test_errors_are_clear(run, run_path, tmp_path):
    with pytest.raises(NotFoundError, match="Sample id 99999 does not exist"):
        run.similar(99999)
    with pytest.raises(ParameterError, match="Class index 12 is out of range"):
        run.heatmap(0, target=12)
    with pytest.raises(NotFoundError, match="Unknown column"):
        run.samples(columns=["nope"])
    with pytest.raises(NotFoundError, match="is not a layer.*valid|classifier"):
        analyze_run(run_path, layer="no.such.layer", progress=False)
    broken = tmp_path / "nomodel"
    shutil.copytree(run_path, broken)
    (broken / layout.WEIGHTS).unlink()
    with pytest.raises(RunError, match="no model weights"):
        analyze_run(broken, progress=False)
    with pytest.raises(RunError, match="does not exist"):
        samplescope.open_run(tmp_path / "missing")


def test_aggregate_and_metrics(run):
    agg = run.aggregate("ink", y="loss", bins=5)
    df = run.samples()
    assert agg["count"].sum() == len(df) and len(agg) == 5
    m = run.metrics("validation")
    val = df[df["subset"] == "validation"]
    assert m["accuracy"] == pytest.approx(val["correct"].mean())
    assert m["confusion"].sum() == len(val)


def test_interrupted_analysis_keeps_the_earlier_one(run_path, tmp_path, monkeypatch):
    path = tmp_path / "run"
    shutil.copytree(run_path, path)
    before = (path / "samples.duckdb").read_bytes(), (path / "latent.npy").read_bytes()
    from samplescope.analysis import projection

    def interrupted(self, latent, neighbors=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(projection.Projection, "fit_transform", interrupted)
    with pytest.raises(KeyboardInterrupt):
        analyze_run(path, progress=False)
    assert ((path / "samples.duckdb").read_bytes(), (path / "latent.npy").read_bytes()) == before
    assert not list(tmp_path.glob(".run.*")), "temporary folders left behind"
    monkeypatch.undo()
    analyze_run(path, projection="pca", progress=False)  # and it can be re-run
    assert samplescope.open_run(path).analyzed


def test_changed_integration_warns_or_refuses_with_strict(tmp_path):
    import samplescope.integrations.digits as builtin

    src = tmp_path / "my_digits.py"
    src.write_text(Path(builtin.__file__).read_text())
    out = samplescope.train_run(str(src), tmp_path / "run", epochs=1, limit=200, progress=False)
    src.write_text(src.read_text() + "\n# changed\n")
    with pytest.raises(IntegrationError, match="changed since.*--strict"):
        analyze_run(out, strict=True, projection="pca", progress=False)
    with pytest.warns(UserWarning, match="changed since"):
        samplescope.open_run(out).integration()


def test_planted_leakage_and_mislabels_are_found(tmp_path):
    """Copy 20 training images into validation and flip 20 training labels: the insights list them."""
    import samplescope.integrations.digits as builtin

    src = Path(builtin.__file__).read_text()
    anchor = "    labels = bunch.target.astype(np.int64)\n"
    assert anchor in src
    src = src.replace(
        anchor,
        anchor
        + "    images[N_TRAIN:N_TRAIN + 20] = images[100:120]  # planted: validation copies of train 100..119\n"
        + "    labels[N_TRAIN:N_TRAIN + 20] = labels[100:120]\n"
        + "    flip = np.arange(200, 400, 10)  # planted: 20 flipped training labels\n"
        + "    labels[flip] = (labels[flip] + 3) % 10\n",
    )
    path = tmp_path / "planted.py"
    path.write_text(src)
    out = samplescope.train_run(str(path), tmp_path / "run", epochs=8, batch_size=64, progress=False)
    analyze_run(out, projection="pca", progress=False)
    run = samplescope.open_run(out)

    leaked = {(100 + i, 1500 + i) for i in range(20)}  # sample ids: train first, validation after
    pairs = {(int(a), int(b)) for ins in run.insights("leakage") for a, b, *_ in ins.details["pairs"]}
    pairs |= {(b, a) for a, b in pairs}
    recall = len(leaked & pairs) / len(leaked)
    print(f"leakage recall {recall:.2f}")
    assert recall >= 0.9, f"leakage recall {recall:.2f}"

    flipped = set(range(200, 400, 10))
    listed = {int(s) for ins in run.insights("mislabel") for s in ins.sample_ids}
    recall = len(flipped & listed) / len(flipped)
    print(f"mislabel recall {recall:.2f}")
    assert recall >= 0.5, f"mislabel recall {recall:.2f}"


def test_a_run_analysed_before_the_graph_was_saved_still_answers_similar(run, run_path, tmp_path):
    """An older layout: no knn files in the folder. Similars come from an engine fitted on the
    saved latent then, the same neighbours as the saved engine gives."""
    import shutil

    from samplescope.store import layout

    old = tmp_path / "old"
    shutil.copytree(run_path, old)
    for name in (layout.NEIGHBOR_ROWS, layout.NEIGHBOR_DISTANCES):
        (old / name).unlink()
    fresh = samplescope.open_run(old)
    got, want = fresh.similar(7, k=6), run.similar(7, k=6)
    np.testing.assert_array_equal(got["sample_id"], want["sample_id"])
    np.testing.assert_allclose(got["similarity"], want["similarity"], atol=1e-5)
    fresh.close()


def test_analysis_saves_the_neighbour_engine_and_similar_reuses_it(run, run_path, monkeypatch):
    from samplescope.analysis.neighbors import NeighborIndex
    from samplescope.store import layout

    for name in (layout.NEIGHBOR_ROWS, layout.NEIGHBOR_DISTANCES):
        assert (run_path / name).exists(), name
    for name in (layout.NEIGHBOR_INDEX, layout.NEIGHBOR_IVF, layout.NEIGHBOR_IVF_LISTS):
        assert not (run_path / name).exists(), f"{name}: a small run is searched exactly"
    info = run.info["analysis"]["neighbors"]
    assert info["engine"] == "exact" and info["recall_at_10"] == 1.0 and info["graph_k"] >= 10
    want = run.similar(3, k=5)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("similar rebuilt the neighbour engine")

    monkeypatch.setattr(NeighborIndex, "fit", no_rebuild)
    fresh = samplescope.open_run(run_path)
    got = fresh.similar(3, k=5)
    np.testing.assert_array_equal(got["sample_id"], want["sample_id"])
    np.testing.assert_allclose(got["similarity"], want["similarity"], atol=1e-6)
    fresh.close()


def test_saved_ivf_index_loads_and_agrees_with_exact_search(run, tmp_path):
    from samplescope.analysis.neighbors import NeighborIndex
    from samplescope.store import layout

    latent = np.asarray(run.latent())
    built = NeighborIndex(exact_max=0).fit(latent)  # the approximate engine, forced on
    assert built.kind_ == "ivf" and built.recall_ >= 0.95
    built.save(tmp_path)
    assert (tmp_path / layout.NEIGHBOR_IVF_LISTS).exists() and not (tmp_path / layout.NEIGHBOR_INDEX).exists()
    loaded = NeighborIndex.load(tmp_path, np.load(run.path / layout.LATENT, mmap_mode="r"))
    assert loaded.kind_ == "ivf" and loaded.nprobe_ == built.nprobe_
    rows = np.arange(0, len(latent), 7)
    for k in (5, 40):  # from the graph, and a search of the loaded index
        a, sa = built.query(rows, k=k)
        b, sb = loaded.query(rows, k=k)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(sa, sb, atol=1e-5)
    exact, _ = NeighborIndex(exact_max=10**6).fit(latent).query(rows, k=10)
    approx, _ = loaded.query(rows, k=10)
    recall = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(approx, exact, strict=True)])
    assert recall >= 0.95
    with pytest.raises(NotFoundError, match="no saved neighbour graph"):
        NeighborIndex.load(tmp_path / "missing", latent)


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_heatmaps_all_come_from_the_one_pass_and_equal_gradcam_batch(run_path, tmp_path):
    """--heatmaps all: Grad-CAM for the predicted and the true class of every sample, made in the
    inference pass, equals gradcam_batch called directly on the same inputs."""
    from samplescope.analysis.attribution import gradcam_batch

    path = tmp_path / "run"
    shutil.copytree(run_path, path)
    analyze_run(path, heatmaps="all", projection="pca", progress=False)
    run = samplescope.open_run(path)
    cams = np.load(path / layout.GRADCAM)
    df = run.samples(["label", "prediction"])
    assert cams.shape == (len(df), 2, *run.info["input_shape"][-2:]) and cams.dtype == np.float16
    ids = np.array([0, 5, len(df) // 2, len(df) - 1])  # across the subsets, and the last batch
    targets = np.stack([df["prediction"].to_numpy()[ids], df["label"].to_numpy()[ids]], axis=1)
    expected = gradcam_batch(run.model(), run.inputs(ids), targets, layer=run.info.get("gradcam_layer"))
    np.testing.assert_allclose(cams[ids].astype(np.float32), expected, rtol=1e-2, atol=1e-3)

"""The analysis pass streams: its working memory does not grow with the number of samples."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from samplescope import Batch, Integration, Subset
from samplescope.analysis.sketch import PixelSketch
from samplescope.pipeline.encode import input_batches, sample_inputs

DIM = 32


def _synthetic(n: int) -> Integration:
    """n cheap 32-D inputs made from the index alone: no dataset is held anywhere."""
    integ = Integration(f"synthetic-{n}", classes=["a", "b"], version="1")

    @integ.subset("train")
    def train(state) -> Subset:
        return Subset(ids=range(n))

    @integ.input("vector", batched=True)
    def vector(batch: Batch) -> np.ndarray:
        rows = np.asarray(batch.ids, dtype=np.float32)[:, None]
        return np.sin(rows * np.arange(1, DIM + 1, dtype=np.float32))  # (B, 32)

    @integ.ground_truth_batched
    def label(batch: Batch) -> np.ndarray:
        return np.asarray(batch.ids, dtype=np.int64) % 2

    return integ


def _peak_of_pass(n: int) -> tuple[int, int]:
    """(peak bytes traced while streaming and sketching n samples, samples seen)."""
    integ = _synthetic(n)
    sizes = {"train": n}
    sketch = PixelSketch(n_components=8).fit(sample_inputs(integ, sizes, 2000))
    sink = sketch.allocate(1024)  # the pass's outputs are not its working memory: a fixed sink
    integ.encode_inputs("train", np.arange(4))  # preprocess and caches warmed outside the measure
    seen = 0
    tracemalloc.start()
    try:
        for _start, _subset, _idx, x in input_batches(integ, sizes, batch_size=1024):
            sketch.transform_into(sink, 0, x)
            seen += len(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, seen


def test_the_pass_memory_stays_flat_from_10k_to_100k_samples():
    small, seen_small = _peak_of_pass(10_000)
    large, seen_large = _peak_of_pass(100_000)
    assert (seen_small, seen_large) == (10_000, 100_000)
    batch_bytes = 1024 * DIM * 4
    # a materialised pass would hold 100k x 32 float32 = 12.8 MB at least; a stream a few batches
    assert large < 10 * batch_bytes, (small, large)
    assert large < 1.5 * small + batch_bytes, (small, large)


def test_input_batches_come_in_sample_id_order_and_bounded():
    integ = _synthetic(2500)
    got = list(input_batches(integ, {"train": 2500}, batch_size=1000))
    assert [(s, len(x)) for s, _sub, _i, x in got] == [(0, 1000), (1000, 1000), (2000, 500)]
    np.testing.assert_array_equal(got[1][3], integ.encode_inputs("train", np.arange(1000, 2000)))
    with pytest.raises(ValueError, match="batch_size=0"):
        next(input_batches(integ, {"train": 10}, batch_size=0))


def test_sketch_keeps_the_pixel_distance_bound():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 50)).astype(np.float32)
    f = PixelSketch(n_components=5).fit(x).transform(x)
    a, b = rng.integers(0, 300, size=(2, 400))
    true = np.linalg.norm(x[a] - x[b], axis=1)
    bound = np.sqrt(((f.z[a] - f.z[b]) ** 2).sum(1) + (f.residual[a] - f.residual[b]) ** 2)
    assert (bound <= true + 1e-3).all()
    same = PixelSketch(n_components=5).fit(x).transform(np.concatenate([x[:3], x[:3]]))
    np.testing.assert_array_equal(same.digest[:3], same.digest[3:])
    assert len(set(f.digest.tolist())) == 300


def _images(n: int) -> Integration:
    """n 8 x 8 images made from the index alone (the tiny run's input shape)."""
    integ = Integration(f"images-{n}", classes=[str(d) for d in range(10)], version="1")

    @integ.subset("train")
    def train(state) -> Subset:
        return Subset(ids=range(n))

    @integ.input("image", batched=True)
    def image(batch: Batch) -> np.ndarray:
        rows = np.asarray(batch.ids, dtype=np.float32)[:, None, None, None]
        grid = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8)
        return (np.sin(rows * 0.37 + grid) + 1) / 2  # (B, 1, 8, 8)

    @integ.ground_truth_batched
    def label(batch: Batch) -> np.ndarray:
        return np.asarray(batch.ids, dtype=np.int64) % 10

    return integ


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import samplescope
    from samplescope.testing import make_tiny_run

    run = samplescope.open_run(make_tiny_run(tmp_path_factory.mktemp("pass") / "run"))
    yield run
    run.close()


def _peak_of_whole_pass(run, n: int, scratch) -> tuple[int, tuple]:
    """(peak bytes traced by analyze's whole pass over n images with Grad-CAM, its outputs)."""
    from types import SimpleNamespace

    from samplescope.pipeline.analyze import _encode_pass

    integ = _images(n)
    # the tiny run's model, layers and input shape; this integration's subsets
    view = SimpleNamespace(info={**run.info, "subsets": {"train": n}}, path=run.path)
    model = run.model()
    integ.encode_inputs("train", np.arange(4))
    labels = np.arange(n) % 10
    tracemalloc.start()
    try:
        out = _encode_pass(view, integ, model, run.info["latent_layer"], labels, "all", 0, False, scratch=scratch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, out


def test_the_whole_pass_with_gradcam_stays_flat_from_6k_to_40k_samples(tiny_run, tmp_path):
    """Inference, the latent, both sketches and Grad-CAM of every sample: the outputs are
    memory-mapped in the scratch folder, so the heap the pass traces does not grow with N
    (held in memory, 34,000 more samples' Grad-CAM and logits would be 10 MB more). Both
    sizes are above the sketches' fitting sample (5,000 inputs), which is the pass's largest
    working array."""
    for name in ("warm", "a", "b"):
        (tmp_path / name).mkdir()
    _peak_of_whole_pass(tiny_run, 500, tmp_path / "warm")  # imports, first calls and caches, unmeasured
    small, _ = _peak_of_whole_pass(tiny_run, 6_000, tmp_path / "a")
    large, (logits, latent, _pixels, _aligned, gradcam) = _peak_of_whole_pass(tiny_run, 40_000, tmp_path / "b")
    for array in (logits, latent, gradcam):
        assert isinstance(array, np.memmap) and len(array) == 40_000
    assert gradcam.shape == (40_000, 2, 8, 8) and np.abs(gradcam[-100:]).sum() > 0  # filled to the end
    held = 34_000 * (2 * 64 * 2 + logits.shape[1] * 4)  # what 34k more rows of Grad-CAM and logits hold
    assert large < small + held / 4, (small, large, held)


def _peak_of_create(n: int, out) -> int:
    """Peak bytes traced while create_run writes a run of n synthetic samples."""
    import torch

    import samplescope

    model = torch.nn.Sequential(torch.nn.Linear(DIM, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    integ = _synthetic(n)
    integ.encode_inputs("train", np.arange(4))
    tracemalloc.start()
    try:
        samplescope.create_run(integ, model, out, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def test_the_samples_table_is_written_in_chunks_from_20k_to_200k_samples(tmp_path, monkeypatch):
    """create_run writes the table a chunk at a time: the traced peak does not grow with N
    (as one DataFrame, 180,000 more rows' ids, keys and labels are about 20 MB more)."""
    import samplescope
    from samplescope.pipeline import encode

    monkeypatch.setattr(encode, "CHUNK_ROWS", 8192)
    _peak_of_create(2_000, tmp_path / "warm")
    small = _peak_of_create(20_000, tmp_path / "small")
    large = _peak_of_create(200_000, tmp_path / "large")
    run = samplescope.open_run(tmp_path / "large")
    assert run.db.count() == 200_000 and run.samples(["key"], limit=3, offset=199_997)["key"].tolist() == [
        "199997", "199998", "199999"]
    run.close()
    assert large < small + 4_000_000, (small, large)


def test_train_encodes_every_label_once(tmp_path, monkeypatch):
    """The training arrays' labels are the samples table's too: each sample's label is
    encoded once by `train`, not again for the table."""
    import samplescope
    from samplescope.integrations.digits import digits

    counted: dict[str, int] = {}
    real = digits.encode_labels

    def encode_labels(subset, idx):
        counted[subset] = counted.get(subset, 0) + len(idx)
        return real(subset, idx)

    monkeypatch.setattr(digits, "encode_labels", encode_labels)
    out = samplescope.train_run(digits, tmp_path / "run", epochs=1, limit=200, progress=False)
    run = samplescope.open_run(out)
    sizes = run.info["subsets"]
    checked = {s: counted[s] - sizes[s] for s in sizes}  # what `check` samples before training
    assert all(0 <= extra <= 16 for extra in checked.values()), (counted, sizes)
    table = run.samples(["label"])
    want = np.concatenate([real(s, np.arange(sizes[s])) for s in sizes])
    np.testing.assert_array_equal(table["label"].to_numpy(), want)
    run.close()

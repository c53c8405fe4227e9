"""The MNIST integration's metadata against plain numpy, on a slice of real MNIST."""

from __future__ import annotations

import numpy as np
import pytest

from samplescope.data.mnist import load_mnist
from samplescope.integration.loader import load_integration


@pytest.fixture(scope="module")
def mnist(mnist_env):
    integ = load_integration("mnist")
    integ._state_ready = False  # fresh state under this session's data dir
    integ._subset_cache.clear()
    return integ


def test_mnist_check_passes(mnist):
    report = mnist.check()
    assert report.ok, report.table()
    assert {r.function for r in report.rows} >= {"train", "validation", "image", "label", "shape"}


def test_subsets_are_mnist_train_and_test(mnist):
    assert mnist.subset_names == ["train", "validation"]
    assert len(mnist.get_subset("train")) == 60000
    assert len(mnist.get_subset("validation")) == 10000


def test_centroid_distances_match_numpy(mnist):
    data = load_mnist(progress=False)
    x_train = data.x_train.reshape(60000, -1).astype(np.float64) / 255.0
    centroids = np.stack([x_train[data.y_train == c].mean(0) for c in range(10)])  # (10, 784)
    idx = np.arange(0, 2000)
    meta = mnist.compute_metadata("validation", idx)
    x = data.x_test[idx].reshape(len(idx), -1).astype(np.float64) / 255.0
    expected = np.sqrt(((x[:, None, :] - centroids[None]) ** 2).sum(-1))  # (B, 10)
    for k in range(10):
        np.testing.assert_allclose(meta[f"dist_to_centroid_{k}"], expected[:, k], rtol=1e-5, atol=1e-5)
    y = data.y_test[idx]
    np.testing.assert_allclose(meta["dist_to_gt_centroid"], expected[np.arange(len(idx)), y], rtol=1e-5)
    np.testing.assert_array_equal(meta["nearest_centroid"], expected.argmin(1))
    rank = (expected < expected[np.arange(len(idx)), y][:, None]).sum(1) + 1
    np.testing.assert_array_equal(meta["gt_centroid_rank"], rank)
    np.testing.assert_array_equal(meta["label"], y)
    np.testing.assert_array_equal(meta["circle"], np.isin(y, [0, 6, 8, 9]))
    np.testing.assert_array_equal(meta["even_odd"], np.where(y % 2 == 0, "even", "odd"))


def test_shape_statistics_match_numpy(mnist):
    data = load_mnist(progress=False)
    idx = np.arange(100)
    meta = mnist.compute_metadata("train", idx)
    for i in idx[:20]:
        img = data.x_train[i].astype(np.float64) / 255.0
        rows = np.flatnonzero(img.max(1) > 0.2)
        cols = np.flatnonzero(img.max(0) > 0.2)
        assert meta["bbox_height"][i] == rows[-1] - rows[0] + 1
        assert meta["bbox_width"][i] == cols[-1] - cols[0] + 1
        assert meta["ink"][i] == pytest.approx(img.mean(), rel=1e-5)
        yy, xx = np.mgrid[0:28, 0:28]
        cy, cx = (img * yy).sum() / img.sum(), (img * xx).sum() / img.sum()
        assert meta["com_offset"][i] == pytest.approx(np.hypot(cx - 13.5, cy - 13.5), rel=1e-4, abs=1e-4)


def test_slant_sign_follows_shear(mnist):
    """A vertical bar sheared to the right has positive slant, to the left negative."""
    from samplescope import Batch
    from samplescope.integrations.mnist import shape

    img = np.zeros((3, 28, 28), np.uint8)
    for r in range(4, 24):
        img[0, r, 14] = 255
        img[1, r, 14 + (14 - r) // 3] = 255  # top to the right: leans right
        img[2, r, 14 - (14 - r) // 3] = 255
    batch = Batch("train", np.arange(3), [0, 1, 2], (img, np.zeros(3, np.uint8)), None)
    slant = shape(batch)["slant"]
    assert abs(slant[0]) < 1e-6 and slant[1] > 0.2 and slant[2] < -0.2


def test_state_centroids_are_each_class_mean_in_float64(mnist):
    """class_centroids converts one class at a time: exactly the means of the whole float64 array."""
    data = load_mnist(progress=False)
    pixels = data.x_train.reshape(60000, -1).astype(np.float32) / 255.0
    whole = pixels.astype(np.float64)
    expected = np.stack([whole[data.y_train == c].mean(axis=0) for c in range(10)]).astype(np.float32)
    assert np.array_equal(mnist.state.centroids, expected)

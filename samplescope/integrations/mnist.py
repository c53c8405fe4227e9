"""MNIST, written with the public integration API (it doubles as its example).

``train`` is the 60,000 training images and ``validation`` the 10,000 test
images. The preprocess state holds the arrays and each class's centroid: the
pixel-wise mean image of that class over the training subset, with pixel values
in [0, 1]. Metadata explains errors: the Euclidean distance from a sample to
every class centroid (a 5 nearer the 6-centroid than the 5-centroid shows why
it was called a 6) and simple shape statistics (ink, bounding box, centre of
mass, slant).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from samplescope import Batch, Integration, Subset
from samplescope.data.mnist import load_mnist
from samplescope.integration.helpers import centroid_distance_columns, class_centroids

CLASSES = [str(d) for d in range(10)]
CIRCLE_DIGITS = (0, 6, 8, 9)  # digits drawn with a closed loop

mnist = Integration("mnist", classes=CLASSES, version="1")


@dataclasses.dataclass(frozen=True)
class MnistState:
    x_train: np.ndarray  # (60000, 28, 28) uint8
    y_train: np.ndarray  # (60000,) uint8
    x_test: np.ndarray  # (10000, 28, 28) uint8
    y_test: np.ndarray  # (10000,) uint8
    centroids: np.ndarray  # (10, 784) float32, pixels in [0, 1]


@mnist.preprocess
def load() -> MnistState:
    data = load_mnist()
    pixels = data.x_train.astype(np.float32)
    pixels /= 255.0  # in place: one 188 MB array, not two (1.1 -> 0.08 s CPU)
    centroids = class_centroids(pixels, data.y_train, len(CLASSES))
    return MnistState(data.x_train, data.y_train, data.x_test, data.y_test, centroids)


@mnist.subset("train")
def train(state: MnistState) -> Subset:
    return Subset(ids=range(len(state.x_train)), data=(state.x_train, state.y_train))


@mnist.subset("validation")
def validation(state: MnistState) -> Subset:
    return Subset(ids=range(len(state.x_test)), data=(state.x_test, state.y_test))


@mnist.input("image", batched=True)
def image(batch: Batch) -> np.ndarray:
    images, _ = batch.data
    return images[batch.indices, None].astype(np.float32) / 255.0  # (B, 1, 28, 28)


@mnist.ground_truth_batched
def label(batch: Batch) -> np.ndarray:
    _, labels = batch.data
    return labels[batch.indices].astype(np.int64)


# label, even_odd and circle say which digit a sample is (functions of the label): they
# describe the digit, never why the model fails on it, and the finders leave them out
@mnist.metadata("digit", batched=True, kind={"label": "class", "even_odd": "category", "circle": "category"})
def digit(batch: Batch) -> dict[str, np.ndarray]:
    y = label(batch)
    return {
        "label": y,
        "even_odd": np.where(y % 2 == 0, "even", "odd"),
        "circle": np.isin(y, CIRCLE_DIGITS),
    }


@mnist.metadata(
    "centroid_distances", batched=True, kind={"nearest_centroid": "class", "gt_centroid_rank": "ordinal"}
)
def centroid_distances(batch: Batch) -> dict[str, np.ndarray]:
    x = image(batch).reshape(len(batch), -1)  # (B, 784) in [0, 1]
    return centroid_distance_columns(x, label(batch), batch.state.centroids)


@mnist.metadata("shape", batched=True, kind="number")
def shape(batch: Batch) -> dict[str, np.ndarray]:
    x = image(batch)[:, 0]  # (B, 28, 28) in [0, 1]
    _b, h, w = x.shape
    ink = x.mean(axis=(1, 2))
    rows_on, cols_on = x.max(axis=2) > 0.2, x.max(axis=1) > 0.2  # (B, 28) each
    height = _extent(rows_on)
    width = _extent(cols_on)
    mass = x.sum(axis=(1, 2)) + 1e-8
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy = (x * yy).sum(axis=(1, 2)) / mass
    cx = (x * xx).sum(axis=(1, 2)) / mass
    # slant: how far x shifts per unit of y (second central moments); > 0 leans right
    mu11 = (x * (xx - cx[:, None, None]) * (yy - cy[:, None, None])).sum(axis=(1, 2)) / mass
    mu02 = (x * (yy - cy[:, None, None]) ** 2).sum(axis=(1, 2)) / mass
    return {
        "ink": ink,
        "bbox_width": width,
        "bbox_height": height,
        "bbox_aspect": width / np.maximum(height, 1),
        "com_offset": np.hypot(cx - (w - 1) / 2, cy - (h - 1) / 2),
        "slant": -mu11 / np.maximum(mu02, 1e-8),
    }


def _extent(on: np.ndarray) -> np.ndarray:
    """Number of pixels between the first and last 'on' position along axis 1 (0 if none)."""
    n = on.shape[1]
    first = np.where(on.any(1), on.argmax(1), 0)
    last = np.where(on.any(1), n - 1 - on[:, ::-1].argmax(1), -1)
    return (last - first + 1).astype(np.int64)


@mnist.visualizer("image")
def picture(sample) -> np.ndarray:
    images, _ = sample.data
    return images[sample.index]  # (28, 28) uint8

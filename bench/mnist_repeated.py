"""MNIST repeated to N samples, for the Ray engine's benchmark (bench/ray_speed.py) and the
image path of the scale benchmark (bench/scale_speed.py --image).

Sample ``i`` of ``train`` is MNIST training image ``i % 60,000`` (``validation``: test
image ``i % 10,000``), so any N is made from the 70,000 images without copying them.
N comes from the environment; 6/7 of the samples are ``train``, 1/7 ``validation``:

    SAMPLESCOPE_REPEAT_N     samples in all (default 70,000)
    SAMPLESCOPE_REPEAT_SHIFT each repeat after an image's first is moved by up to this many
                             pixels in x and y (default 0: byte-equal copies), a
                             deterministic function of the sample index, zeros shifted in

Written with the public integration API only, like any user's integration. One cheap
metadata column (``ink``), so making the run costs little beside the analysis.
"""

from __future__ import annotations

import os

import numpy as np

from samplescope import Batch, Integration, Subset
from samplescope.data.mnist import load_mnist

N = int(os.environ.get("SAMPLESCOPE_REPEAT_N", "70000"))
N_TRAIN = N * 6 // 7
SHIFT = int(os.environ.get("SAMPLESCOPE_REPEAT_SHIFT", "0"))

integration = Integration("mnist_repeated", classes=[str(d) for d in range(10)], version="1")


@integration.preprocess
def load():
    return load_mnist()


@integration.subset("train")
def train(data) -> Subset:
    return Subset(ids=range(N_TRAIN), data=(data.x_train, data.y_train))


@integration.subset("validation")
def validation(data) -> Subset:
    return Subset(ids=range(N_TRAIN, N), data=(data.x_test, data.y_test))


def _rows(batch: Batch, images: np.ndarray) -> np.ndarray:
    return np.asarray(batch.indices, np.int64) % len(images)


def source_rows(indices: np.ndarray, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Each subset index's image row and its (dy, dx) move (zero for an image's first repeat)."""
    indices = np.asarray(indices, np.int64)
    side = 2 * SHIFT + 1
    pick = ((indices * 2654435761) % (2**32)) % (side * side)  # a hash of the index
    first = indices < n_images
    dy = np.where(first, 0, pick // side - SHIFT)
    dx = np.where(first, 0, pick % side - SHIFT)
    return indices % n_images, np.stack([dy, dx], axis=1)


def _moved(pictures: np.ndarray, moves: np.ndarray) -> np.ndarray:
    """(B, 28, 28) pictures each shifted by its (dy, dx), zeros shifted in."""
    out = np.zeros_like(pictures)
    h, w = pictures.shape[1:]
    for dy, dx in np.unique(moves, axis=0):
        at = np.flatnonzero((moves[:, 0] == dy) & (moves[:, 1] == dx))
        out[at, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = pictures[
            at, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    return out


@integration.input("image", batched=True)
def image(batch: Batch) -> np.ndarray:
    images, _ = batch.data
    rows, moves = source_rows(batch.indices, len(images))
    pictures = images[rows]
    if SHIFT:
        pictures = _moved(pictures, moves)
    return pictures[:, None].astype(np.float32) / 255.0  # (B, 1, 28, 28)


@integration.ground_truth_batched
def label(batch: Batch) -> np.ndarray:
    images, labels = batch.data
    return labels[_rows(batch, images)].astype(np.int64)


@integration.metadata("ink", batched=True, kind="number")
def ink(batch: Batch) -> dict[str, np.ndarray]:
    return {"ink": image(batch).mean(axis=(1, 2, 3))}

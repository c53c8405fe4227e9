"""MNIST repeated to N samples, for the Ray engine's benchmark (bench/ray_speed.py).

Sample ``i`` of ``train`` is MNIST training image ``i % 60,000`` (``validation``: test
image ``i % 10,000``), so any N is made from the 70,000 images without copying them.
N comes from the environment; 6/7 of the samples are ``train``, 1/7 ``validation``:

    SAMPLESCOPE_REPEAT_N     samples in all (default 70,000)

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


@integration.input("image", batched=True)
def image(batch: Batch) -> np.ndarray:
    images, _ = batch.data
    return images[_rows(batch, images), None].astype(np.float32) / 255.0  # (B, 1, 28, 28)


@integration.ground_truth_batched
def label(batch: Batch) -> np.ndarray:
    images, labels = batch.data
    return labels[_rows(batch, images)].astype(np.int64)


@integration.metadata("ink", batched=True, kind="number")
def ink(batch: Batch) -> dict[str, np.ndarray]:
    return {"ink": image(batch).mean(axis=(1, 2, 3))}

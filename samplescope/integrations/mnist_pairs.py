"""Two MNIST digits side by side: a multi-label example (the label is the set of digits shown).

Each sample is a 28x56 image, two MNIST digits next to each other, drawn from a seeded
list of pairs: ``train`` pairs MNIST training images, ``validation`` pairs MNIST test
images. Its ground truth is the set of digits it shows, one digit when both halves
show the same one (``[3, 7]``, ``[5]``), so the task is multi-label over the classes
"0" to "9": one sigmoid output per digit, binary cross-entropy, and an error is any
digit decided wrongly. Sizes: 12,000 train and 2,000 validation pairs (``limit``
takes fewer, as the tests do).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from samplescope import Batch, Integration, Subset
from samplescope.data.mnist import load_mnist

CLASSES = [str(d) for d in range(10)]
N_TRAIN, N_VALIDATION = 12_000, 2_000

mnist_pairs = Integration("mnist_pairs", classes=CLASSES, task="multilabel", version="1")


@dataclasses.dataclass(frozen=True)
class PairsState:
    images: dict[str, np.ndarray]  # subset -> (N, 28, 28) uint8 MNIST images
    digits: dict[str, np.ndarray]  # subset -> (N,) their digits
    pairs: dict[str, np.ndarray]  # subset -> (P, 2) rows of the images: left, right


@mnist_pairs.preprocess
def load() -> PairsState:
    data = load_mnist()
    rng = np.random.default_rng(0)
    images = {"train": data.x_train, "validation": data.x_test}
    digits = {"train": data.y_train.astype(np.int64), "validation": data.y_test.astype(np.int64)}
    sizes = {"train": N_TRAIN, "validation": N_VALIDATION}
    pairs = {s: rng.integers(0, len(images[s]), size=(n, 2)) for s, n in sizes.items()}
    return PairsState(images, digits, pairs)


@mnist_pairs.subset("train")
def train(state: PairsState) -> Subset:
    return Subset(ids=range(N_TRAIN), data="train")


@mnist_pairs.subset("validation")
def validation(state: PairsState) -> Subset:
    return Subset(ids=range(N_VALIDATION), data="validation")


def _pairs(batch: Batch) -> np.ndarray:
    return batch.state.pairs[batch.data][batch.indices]  # (B, 2)


@mnist_pairs.input("image", batched=True, kind="image")
def image(batch: Batch) -> np.ndarray:
    pics = batch.state.images[batch.data][_pairs(batch)]  # (B, 2, 28, 28)
    side_by_side = np.concatenate([pics[:, 0], pics[:, 1]], axis=2)  # (B, 28, 56)
    return side_by_side[:, None].astype(np.float32) / 255.0  # (B, 1, 28, 56)


@mnist_pairs.ground_truth_batched
def digits_shown(batch: Batch) -> np.ndarray:
    shown = batch.state.digits[batch.data][_pairs(batch)]  # (B, 2)
    out = np.zeros((len(batch), len(CLASSES)), np.int8)  # (B, 10) 0/1: a digit shown twice is one label
    out[np.arange(len(batch))[:, None], shown] = 1
    return out


@mnist_pairs.metadata("pair", batched=True)
def pair(batch: Batch) -> dict[str, np.ndarray]:
    shown = batch.state.digits[batch.data][_pairs(batch)]
    x = image(batch)[:, 0]
    return {
        "same_digit": shown[:, 0] == shown[:, 1],
        "ink": x.mean(axis=(1, 2)),
        "ink_balance": x[:, :, :28].mean(axis=(1, 2)) - x[:, :, 28:].mean(axis=(1, 2)),
    }


@mnist_pairs.visualizer("image")
def picture(sample) -> np.ndarray:
    left, right = sample.state.pairs[sample.data][sample.index]
    images = sample.state.images[sample.data]
    return np.concatenate([images[left], images[right]], axis=1)  # (28, 56) uint8

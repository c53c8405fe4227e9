"""A synthetic integration with cheap inputs, for the scale benchmark (bench/scale_speed.py).

32-D vectors from a mixture of 10 classes (one Gaussian per class), computed from the
sample index alone, so no dataset is ever held in memory: any batch of any of the
N samples is made on demand. 2% of the labels are flipped (planted mislabels), and
the first ``N // 1000`` validation samples are exact copies of training samples
(planted leakage). Sizes come from the environment:

    SAMPLESCOPE_SYNTH_N      samples in all (default 100,000); 90% train, 10% validation
    SAMPLESCOPE_SYNTH_SEED   seed of the class centres (default 0)

Written with the public integration API only, like any user's integration.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from samplescope import Batch, Integration, Subset

N = int(os.environ.get("SAMPLESCOPE_SYNTH_N", "100000"))
SEED = int(os.environ.get("SAMPLESCOPE_SYNTH_SEED", "0"))
DIM, CLASSES, BLOCK = 32, 10, 4096
N_TRAIN = N * 9 // 10
FLIP_EVERY = 50  # every 50th sample's label is flipped: 2%

synthetic = Integration("synthetic", classes=[f"c{i}" for i in range(CLASSES)], version="1")


class MLP(nn.Module):
    """The small classifier the benchmark trains: 32 -> 64 -> 64 -> 10."""

    def __init__(self, dim: int = DIM, hidden: int = 64, classes: int = CLASSES) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))  # (B, classes)


@synthetic.preprocess
def load() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    return {"centres": rng.normal(0, 1.2, size=(CLASSES, DIM)).astype(np.float32)}


@synthetic.subset("train")
def train(state) -> Subset:
    return Subset(ids=range(N_TRAIN), data=state)


@synthetic.subset("validation")
def validation(state) -> Subset:
    return Subset(ids=range(N_TRAIN, N), data=state)


def _rows(batch: Batch) -> np.ndarray:
    rows = np.asarray(batch.ids, dtype=np.int64)  # ids are global row numbers
    # planted leakage: the first N // 1000 validation rows repeat training rows
    leak = (rows >= N_TRAIN) & (rows < N_TRAIN + N // 1000)
    return np.where(leak, rows - N_TRAIN, rows)


def true_class(rows: np.ndarray) -> np.ndarray:
    return ((rows * 2654435761) % (2**32)) % CLASSES


def _noise(rows: np.ndarray) -> np.ndarray:
    """(B, DIM) standard normals, a deterministic function of each row number."""
    out = np.empty((len(rows), DIM), np.float32)
    blocks = rows // BLOCK
    for b in np.unique(blocks):
        at = np.flatnonzero(blocks == b)
        block = np.random.default_rng([SEED, int(b)]).standard_normal((BLOCK, DIM), dtype=np.float32)
        out[at] = block[rows[at] % BLOCK]
    return out


@synthetic.input("vector", batched=True)
def vector(batch: Batch) -> np.ndarray:
    rows = _rows(batch)
    return batch.state["centres"][true_class(rows)] + _noise(rows)  # (B, 32)


@synthetic.ground_truth_batched
def label(batch: Batch) -> np.ndarray:
    rows = _rows(batch)
    y = true_class(rows)
    flipped = rows % FLIP_EVERY == 7
    return np.where(flipped, (y + 1) % CLASSES, y).astype(np.int64)


@synthetic.metadata("stats", batched=True)
def stats(batch: Batch) -> dict[str, np.ndarray]:
    rows = _rows(batch)
    noise = _noise(rows)
    return {
        "noise_norm": np.linalg.norm(noise, axis=1),
        "shard": np.where(rows % 3 == 0, "a", np.where(rows % 3 == 1, "b", "c")),
    }

"""scikit-learn's bundled 8x8 handwritten digits: a dataset that needs no download.

1,797 images of 8x8 pixels (values 0-16). ``train`` is the first 1,500 and
``validation`` the remaining 297. Used by the test suite's small runs and as a
second example of the integration API (``docs/integrate.md`` walks through it).
"""

from __future__ import annotations

import numpy as np

from samplescope import Batch, Integration, Subset
from samplescope.integration.helpers import centroid_distance_columns, class_centroids

digits = Integration("digits", classes=[str(d) for d in range(10)], version="1")
N_TRAIN = 1500


@digits.preprocess
def load() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    labels = bunch.target.astype(np.int64)
    # each class's mean image over the training subset, for the centroid-distance metadata
    centroids = class_centroids(images[:N_TRAIN], labels[:N_TRAIN], 10)
    return {"images": images, "labels": labels, "centroids": centroids}


@digits.subset("train")
def train(state: dict[str, np.ndarray]) -> Subset:
    return Subset(ids=list(range(N_TRAIN)), data=state)


@digits.subset("validation")
def validation(state: dict[str, np.ndarray]) -> Subset:
    return Subset(ids=list(range(N_TRAIN, len(state["labels"]))), data=state)


def _rows(batch: Batch) -> np.ndarray:
    return np.asarray(batch.ids, dtype=np.int64)  # ids are rows of the full array


@digits.input("image", batched=True)
def image(batch: Batch) -> np.ndarray:
    return batch.data["images"][_rows(batch), None]  # (B, 1, 8, 8)


@digits.ground_truth_batched
def label(batch: Batch) -> np.ndarray:
    return batch.data["labels"][_rows(batch)]


@digits.metadata("stats", batched=True)
def stats(batch: Batch) -> dict[str, np.ndarray]:
    x = image(batch)[:, 0]
    y = label(batch)
    return {
        "ink": x.mean(axis=(1, 2)),
        "rows_used": (x.max(axis=2) > 0.25).sum(axis=1),
        "even_odd": np.where(y % 2 == 0, "even", "odd"),
    }


@digits.metadata("centroid_distances", batched=True)
def centroid_distances(batch: Batch) -> dict[str, np.ndarray]:
    return centroid_distance_columns(image(batch), label(batch), batch.state["centroids"])


@digits.visualizer("image")
def picture(sample) -> np.ndarray:
    return (sample.data["images"][sample.id] * 255).round().astype(np.uint8)  # (8, 8)

"""scikit-learn's bundled breast cancer data: a tabular classification example.

569 tumours, 30 numeric features each (measurements of cell nuclei in a
digitised image: mean, standard error and worst value of radius, texture,
area...), classes ``malignant`` (212) and ``benign`` (357). A seeded, stratified
split keeps 80% for ``train`` (455) and 20% for ``validation`` (114). No download.

The input is a ``vector`` of the raw features (the default MLP standardises them
itself), so ``samplescope train --integration breast_cancer`` trains an MLP,
attributions are per feature and a sample is shown as a feature table. Written with
the public integration API only, like every built-in::

    samplescope train --integration breast_cancer --out runs/breast_cancer
    samplescope analyze runs/breast_cancer && samplescope report runs/breast_cancer
"""

from __future__ import annotations

import numpy as np

from samplescope import Batch, Integration, Subset

VALIDATION_FRACTION = 0.2
SEED = 0

breast_cancer = Integration("breast_cancer", classes=["malignant", "benign"], version="1")


@breast_cancer.preprocess
def load() -> dict[str, object]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    x = bunch.data.astype(np.float32)  # (569, 30)
    y = bunch.target.astype(np.int64)  # 0 malignant, 1 benign
    rows = np.arange(len(y))
    train, val = train_test_split(rows, test_size=VALIDATION_FRACTION, random_state=SEED, stratify=y)
    return {"x": x, "y": y, "train": np.sort(train), "validation": np.sort(val),
            "features": [str(f) for f in bunch.feature_names]}  # fmt: skip


def _subset(name: str):
    @breast_cancer.subset(name)
    def make(state: dict) -> Subset:
        return Subset(ids=[int(i) for i in state[name]], data=state)  # ids: rows of the bundled table

    return make


train = _subset("train")
validation = _subset("validation")


def _rows(batch: Batch) -> np.ndarray:
    return np.asarray(batch.ids, dtype=np.int64)


def _feature_names() -> list[str]:
    from sklearn.datasets import load_breast_cancer

    return [str(f) for f in load_breast_cancer().feature_names]


@breast_cancer.input("features", batched=True, kind="vector", feature_names=_feature_names())
def features(batch: Batch) -> np.ndarray:
    return batch.data["x"][_rows(batch)]  # (B, 30) raw measurements


@breast_cancer.ground_truth_batched
def diagnosis(batch: Batch) -> np.ndarray:
    return batch.data["y"][_rows(batch)]


@breast_cancer.metadata("size", batched=True)
def size(batch: Batch) -> dict[str, np.ndarray]:
    x = batch.data["x"][_rows(batch)]
    names = batch.data["features"]
    radius = x[:, names.index("mean radius")]
    return {
        "mean_radius": radius,
        "worst_area": x[:, names.index("worst area")],
        "size_band": np.where(radius < 12, "small", np.where(radius < 16, "medium", "large")),
    }

"""scikit-learn's bundled diabetes data: a regression example that needs no download.

442 patients, 10 baseline features (age, sex, body-mass index, blood pressure and
six blood serum measurements, as scikit-learn ships them: mean-centred and scaled)
and the target, a quantitative measure of disease progression one year later
(25 to 346). A seeded shuffle puts 353 patients (80%) in ``train`` and 89 in
``validation``. The input is the 10-value feature vector, so ``samplescope train``
picks the MLP; the task is regression, so the loss is the squared error and an
error is a prediction in the worst decile of validation absolute errors
(docs/concepts.md).
"""

from __future__ import annotations

import numpy as np

from samplescope import Batch, Integration, Subset

TARGET = "disease progression"
N_TRAIN = 353

diabetes = Integration("diabetes", task="regression", target=TARGET, version="1")


@diabetes.preprocess
def load() -> dict[str, object]:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    order = np.random.default_rng(0).permutation(len(bunch.target))  # a fixed, seeded split
    return {
        "x": bunch.data.astype(np.float32),  # (442, 10)
        "y": bunch.target.astype(np.float64),  # (442,)
        "train": order[:N_TRAIN],
        "validation": order[N_TRAIN:],
    }


@diabetes.subset("train")
def train(state: dict) -> Subset:
    return Subset(ids=state["train"].tolist(), data=state)


@diabetes.subset("validation")
def validation(state: dict) -> Subset:
    return Subset(ids=state["validation"].tolist(), data=state)


def _rows(batch: Batch) -> np.ndarray:
    return np.asarray(batch.ids, dtype=np.int64)  # ids are rows of scikit-learn's arrays


FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]  # load_diabetes().feature_names


@diabetes.input("features", batched=True, kind="vector", feature_names=FEATURES)
def features(batch: Batch) -> np.ndarray:
    return batch.data["x"][_rows(batch)]  # (B, 10)


@diabetes.ground_truth_batched
def progression(batch: Batch) -> np.ndarray:
    return batch.data["y"][_rows(batch)]  # (B,) float


@diabetes.metadata("patient", batched=True, kind={"sex": "category"})
def patient(batch: Batch) -> dict[str, np.ndarray]:
    x = batch.data["x"][_rows(batch)]
    # scikit-learn ships sex as two scaled values; the lower one is coded 1 in the original data
    return {"age": x[:, 0], "sex": np.where(x[:, 1] > 0, "2", "1"), "bmi": x[:, 2], "bp": x[:, 3]}

"""Synthetic, seeded datasets for the insight finders' tests.

``make_data()`` builds well-separated Gaussian class blobs in a latent space
(the first half of the dimensions), separate "pixel" templates per class, and
a model that predicts the true class confidently except for ~2% natural
errors. Tests plant one problem (leaked copies, flipped labels, a failing
cluster, far-away points, a metadata trend) and check the finder names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from samplescope.analysis.insights import InsightContext


@dataclass
class SyntheticData:
    labels: np.ndarray  # (N,) given labels
    truth: np.ndarray  # (N,) true classes
    probs: np.ndarray  # (N, C) model probabilities
    latent: np.ndarray  # (N, D)
    pixels: np.ndarray  # (N, P)
    subset: np.ndarray  # (N,) "train" / "validation"
    sample_id: np.ndarray  # (N,) not row positions on purpose
    metadata: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.labels)

    def rows_of(self, subset: str) -> np.ndarray:
        return np.flatnonzero(self.subset == subset)

    def frame(self) -> pd.DataFrame:
        pred = self.probs.argmax(axis=1)
        p_label = self.probs[np.arange(self.n), np.maximum(self.labels, 0)]
        df = pd.DataFrame(
            {
                "sample_id": self.sample_id,
                "subset": self.subset,
                "label": self.labels,
                "prediction": pred,
                "loss": -np.log(np.clip(p_label, 1e-7, 1.0)),
                "correct": pred == self.labels,
                "confidence": self.probs.max(axis=1),
            }
        )
        for j in range(self.probs.shape[1]):
            df[f"prob_{j}"] = self.probs[:, j]
        for name, values in self.metadata.items():
            df[name] = values
        return df

    def context(self, with_inputs: bool = True, **kwargs) -> InsightContext:
        pixels = self.pixels
        return InsightContext(
            samples=self.frame(),
            latent=self.latent,
            inputs=(lambda rows: pixels[np.asarray(rows)]) if with_inputs else None,
            class_names=[f"c{j}" for j in range(self.probs.shape[1])],
            metadata_columns=list(self.metadata),
            **kwargs,
        )


def confident_probs(
    classes: np.ndarray,
    n_classes: int,
    rng: np.random.Generator,
    confidence: tuple[float, float] = (0.85, 0.99),
) -> np.ndarray:
    """(N, C) probabilities peaked on ``classes``, the rest spread at random."""
    n = len(classes)
    top = rng.uniform(*confidence, size=n)
    rest = rng.dirichlet(np.ones(n_classes - 1), size=n) * (1 - top)[:, None]
    probs = np.empty((n, n_classes))
    for i in range(n):
        probs[i] = np.insert(rest[i], classes[i], top[i])
    return probs


def make_data(
    n_per_class: int = 300,
    n_classes: int = 5,
    dim: int = 16,
    n_pixels: int = 64,
    error_rate: float = 0.02,
    seed: int = 0,
) -> SyntheticData:
    rng = np.random.default_rng(seed)
    n = n_per_class * n_classes
    truth = np.repeat(np.arange(n_classes), n_per_class)
    rng.shuffle(truth)
    half = dim // 2
    centres = np.zeros((n_classes, dim))
    centres[:, :half] = rng.normal(0, 1, (n_classes, half)) * 6
    latent = (
        centres[truth]
        + rng.normal(0, 1, (n, dim)) * np.r_[np.ones(half), 0.3 * np.ones(dim - half)]
    )
    templates = rng.normal(0, 1, (n_classes, n_pixels)) * 2
    pixels = templates[truth] + rng.normal(0, 1, (n, n_pixels))
    predicted = truth.copy()
    wrong = rng.random(n) < error_rate
    predicted[wrong] = (truth[wrong] + rng.integers(1, n_classes, wrong.sum())) % n_classes
    probs = confident_probs(predicted, n_classes, rng)
    subset = np.where(rng.random(n) < 0.75, "train", "validation")
    sample_id = 1000 + 7 * rng.permutation(n)
    metadata = {
        "brightness": rng.normal(0.5, 0.1, n),
        "scanner": rng.choice(["a", "b", "c"], n),
        "rotated": rng.random(n) < 0.3,
    }
    return SyntheticData(
        truth.copy(),
        truth,
        probs,
        latent.astype(np.float32),
        pixels.astype(np.float32),
        subset,
        sample_id,
        metadata,
    )


# --------------------------------------------------------------------------- planted problems


def _predict(
    d: SyntheticData, rows: np.ndarray, predicted: np.ndarray, rng: np.random.Generator
) -> None:
    d.probs[rows] = confident_probs(predicted, d.probs.shape[1], rng)


def plant_leakage(
    d: SyntheticData, n_exact: int = 20, n_near: int = 20, seed: int = 1
) -> list[tuple[int, int]]:
    """Copy training samples over validation ones (inputs, latent, label).

    Returns the (train_id, validation_id) pairs.
    """
    rng = np.random.default_rng(seed)
    train = rng.choice(d.rows_of("train"), n_exact + n_near, replace=False)
    val = rng.choice(d.rows_of("validation"), n_exact + n_near, replace=False)
    for i, (src, dst) in enumerate(zip(train, val, strict=True)):
        noise = 0.0 if i < n_exact else 0.05
        d.pixels[dst] = d.pixels[src] + rng.normal(0, noise, d.pixels.shape[1])
        d.latent[dst] = d.latent[src] + rng.normal(0, noise / 50, d.latent.shape[1])
        d.labels[dst] = d.truth[dst] = d.labels[src]
        d.probs[dst] = d.probs[src]
    return [(int(d.sample_id[a]), int(d.sample_id[b])) for a, b in zip(train, val, strict=True)]


def plant_duplicates(
    d: SyntheticData, subset: str = "train", n: int = 10, seed: int = 2
) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    rows = rng.choice(d.rows_of(subset), 2 * n, replace=False)
    src, dst = rows[:n], rows[n:]
    d.pixels[dst] = d.pixels[src]
    d.latent[dst] = d.latent[src]
    d.labels[dst] = d.truth[dst] = d.labels[src]
    d.probs[dst] = d.probs[src]
    return [(int(d.sample_id[a]), int(d.sample_id[b])) for a, b in zip(src, dst, strict=True)]


def plant_mislabels(d: SyntheticData, n: int = 50, seed: int = 3) -> np.ndarray:
    """Flip ``n`` correctly predicted labels to another class; returns their sample ids."""
    rng = np.random.default_rng(seed)
    ok = np.flatnonzero((d.probs.argmax(axis=1) == d.truth) & (d.labels == d.truth))
    rows = rng.choice(ok, n, replace=False)
    c = d.probs.shape[1]
    d.labels[rows] = (d.truth[rows] + rng.integers(1, c, n)) % c
    return d.sample_id[rows]


def _latent_blob(d: SyntheticData, n: int, rng: np.random.Generator) -> np.ndarray:
    """Move ``n`` random rows to a tight latent blob of their own (a random centre, 6 sd
    out, in half the dimensions); returns the rows."""
    rows = rng.choice(d.n, n, replace=False)
    dim = d.latent.shape[1]
    centre = np.zeros(dim)
    centre[: dim // 2] = rng.normal(0, 1, dim // 2) * 6
    d.latent[rows] = centre + rng.normal(0, 0.5, (n, dim))
    return rows


def plant_failing_cluster(d: SyntheticData, n: int = 60, seed: int = 4) -> np.ndarray:
    """A separate latent blob of classes 1 and 2, 40% wrong (1 called 2), high brightness."""
    rng = np.random.default_rng(seed)
    rows = _latent_blob(d, n, rng)
    d.labels[rows] = d.truth[rows] = np.where(np.arange(n) % 2 == 0, 1, 2)
    predicted = np.where(rng.random(n) < 0.8, 2, d.truth[rows])
    _predict(d, rows, predicted, rng)
    d.metadata["brightness"][rows] = rng.normal(0.9, 0.05, n)
    return d.sample_id[rows]


def plant_overfit_cluster(d: SyntheticData, n: int = 120, seed: int = 5) -> np.ndarray:
    """A separate latent blob: perfect on its training samples, poor on its validation ones."""
    rng = np.random.default_rng(seed)
    rows = _latent_blob(d, n, rng)
    d.subset[rows] = np.where(np.arange(n) < 2 * n // 3, "train", "validation")
    d.labels[rows] = d.truth[rows] = 3
    val = d.subset[rows] == "validation"
    predicted = np.where(val & (rng.random(n) < 0.6), 4, 3)
    d.probs[rows] = confident_probs(predicted, d.probs.shape[1], rng, (0.97, 0.999))
    return d.sample_id[rows]


def plant_outliers(d: SyntheticData, n: int = 15, seed: int = 6) -> np.ndarray:
    """Validation samples whose latent lives in the dimensions no class uses."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(d.rows_of("validation"), n, replace=False)
    dim = d.latent.shape[1]
    d.latent[rows] = 0
    d.latent[rows, dim // 2 :] = rng.normal(0, 6, (n, dim - dim // 2))
    return d.sample_id[rows]


def plant_metadata_trend(d: SyntheticData, column: str = "difficulty", seed: int = 7) -> None:
    """A numeric column whose value drives the error rate (0.5% up to ~15%)."""
    rng = np.random.default_rng(seed)
    value = rng.random(d.n)
    d.metadata[column] = value
    wrong = rng.random(d.n) < 0.005 + 0.15 * value**2
    c = d.probs.shape[1]
    predicted = np.where(wrong, (d.truth + rng.integers(1, c, d.n)) % c, d.truth)
    d.probs[:] = confident_probs(predicted, c, rng)


def plant_bad_category(
    d: SyntheticData, column: str = "scanner", value: str = "b", rate: float = 0.25, seed: int = 8
) -> None:
    """Samples with ``column == value`` are misclassified at ``rate``."""
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(d.metadata[column] == value)
    wrong = rows[rng.random(len(rows)) < rate]
    c = d.probs.shape[1]
    _predict(d, wrong, (d.truth[wrong] + rng.integers(1, c, len(wrong))) % c, rng)


def make_problem_data(seed: int = 0) -> tuple[SyntheticData, dict[str, object]]:
    """One dataset with every planted problem, for the conformance table."""
    d = make_data(n_per_class=400, seed=seed)
    plant_metadata_trend(d)
    planted: dict[str, object] = {
        "cluster": plant_failing_cluster(d),
        "outliers": plant_outliers(d),
        "leakage": plant_leakage(d),
        "mislabels": plant_mislabels(d),
    }
    return d, planted


def plant_class_confound(d: SyntheticData, cls: int = 0, rate: float = 0.2, seed: int = 9) -> None:
    """Class ``cls`` is hard (misclassified at ``rate``), and two columns only say which
    class a sample is: ``stroke`` is high for that class (noise otherwise), ``parity`` is
    the label's parity (a function of the label). Neither explains anything within a class."""
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(d.labels == cls)
    wrong = rows[rng.random(len(rows)) < rate]
    c = d.probs.shape[1]
    _predict(d, wrong, (d.truth[wrong] + rng.integers(1, c, len(wrong))) % c, rng)
    d.metadata["stroke"] = rng.normal(0, 1, d.n) + 3.0 * (d.labels == cls)
    d.metadata["parity"] = np.where(d.labels % 2 == 0, "even", "odd")


def plant_within_class(
    d: SyntheticData, cls: int = 2, column: str = "slant", share: float = 0.3, seed: int = 10
) -> np.ndarray:
    """A third of class ``cls`` has a high ``column`` (noise elsewhere) and fails 60% of the time;
    returns those sample ids."""
    rng = np.random.default_rng(seed)
    d.metadata[column] = rng.normal(0, 1, d.n)
    rows = np.flatnonzero(d.labels == cls)
    hit = rows[rng.random(len(rows)) < share]
    d.metadata[column][hit] += 3.0
    wrong = hit[rng.random(len(hit)) < 0.6]
    c = d.probs.shape[1]
    _predict(d, wrong, (d.truth[wrong] + rng.integers(1, c, len(wrong))) % c, rng)
    return d.sample_id[hit]

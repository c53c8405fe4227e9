"""Compact pixel-space features of every input, for the duplicate finder, made in one pass.

    sketch = PixelSketch(n_components=32, random_state=0).fit(sample)   # (S, P) flattened inputs
    features = sketch.allocate(n)                                        # (N, m) + (N,) + (N,)
    for start, x in batches:                                             # the inference pass
        sketch.transform_into(features, start, x)
    features.z, features.residual, features.digest

Each input ``x`` (flattened to P values) keeps three things, ``m + 2`` numbers instead of P:

- ``z``: its projection onto the top ``m`` principal axes of a seeded sample (centred);
- ``residual``: the norm of what the projection drops, ``||x - mean - B z||``;
- ``digest``: a 64-bit hash of its bytes (identical inputs share a digest).

An orthogonal projection never increases a distance, and with the residual norms
``||x - y||^2 >= ||z_x - z_y||^2 + (r_x - r_y)^2``, so every pair within a pixel
distance is within it here: the finder searches these features for candidates and
measures only the candidates' exact distances. ``scale`` is the root-mean-square
distance between two random inputs, ``sqrt(2 * total variance)``, from the sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from samplescope.errors import SamplescopeError

__all__ = ["PixelFeatures", "PixelSketch"]


@dataclass
class PixelFeatures:
    """Per-row sketch of the inputs: ``z`` (N, m) float32, ``residual`` (N,), ``digest`` (N,) int64."""

    z: np.ndarray
    residual: np.ndarray
    digest: np.ndarray
    scale: float

    def __len__(self) -> int:
        return len(self.z)


class PixelSketch:
    """Fit on a sample of flattened inputs, then transform batches of any number of rows."""

    def __init__(self, n_components: int = 32, random_state: int = 0) -> None:
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, sample: np.ndarray) -> PixelSketch:
        """Learn the mean, the top principal axes and the pixel scale of ``sample`` (S, P)."""
        from sklearn.utils.extmath import randomized_svd
        from threadpoolctl import threadpool_limits

        x = np.asarray(sample, dtype=np.float32).reshape(len(sample), -1)
        if len(x) < 2:
            raise SamplescopeError(
                f"PixelSketch.fit needs at least 2 sample inputs, got {len(x)}; analyse more samples"
            )
        self.mean_ = x.mean(axis=0)
        self.scale_ = math.sqrt(2.0 * float(x.var(axis=0, dtype=np.float64).sum()))
        m = max(1, min(self.n_components, x.shape[1], len(x)))
        # any orthonormal basis keeps the bound; the top principal axes make it tight.
        # Randomised SVD: ~50x cheaper than a full one.
        with threadpool_limits(1, user_api="blas"):  # small LAPACK calls: threads only spin
            _, _, vt = randomized_svd(x - self.mean_, m, n_iter=4, random_state=self.random_state)
        self.basis_ = np.ascontiguousarray(vt.T, dtype=np.float32)  # (P, m), orthonormal columns
        return self

    def allocate(self, n: int, folder: str | Path | None = None, name: str = "sketch") -> PixelFeatures:
        """Empty features for ``n`` rows, filled by :meth:`transform_into`. With ``folder`` the
        (N, m) projections are a memory-mapped ``<name>.npy`` there (the process's memory does
        not grow with N; the kernel may drop the pages), else an array in memory."""
        m = self.basis_.shape[1]
        if folder is None:
            z = np.zeros((n, m), np.float32)
        else:
            from samplescope.store.folder import mapped_array

            z = mapped_array(Path(folder) / f"{name}.npy", (n, m), np.float32)
        return PixelFeatures(z, np.zeros(n, np.float64), np.zeros(n, np.int64), self.scale_)

    def transform_into(self, out: PixelFeatures, start: int, batch: np.ndarray) -> None:
        """Sketch ``batch`` (B, ...) into rows ``start .. start + B`` of ``out``."""
        x = np.asarray(batch, dtype=np.float32).reshape(len(batch), -1)
        if x.shape[1] != len(self.mean_):
            raise SamplescopeError(
                f"PixelSketch: a batch has {x.shape[1]} values per input, the fitted sample "
                f"{len(self.mean_)}; every input must have one shape"
            )
        stop = start + len(x)
        centred = x - self.mean_
        z = centred @ self.basis_  # (B, m)
        total = np.einsum("ij,ij->i", centred, centred, dtype=np.float64)
        out.z[start:stop] = z
        out.residual[start:stop] = np.sqrt(np.maximum(total - np.einsum("ij,ij->i", z, z, dtype=np.float64), 0))
        out.digest[start:stop] = _digest(x)

    def transform(self, x: np.ndarray) -> PixelFeatures:
        """Features of every row of ``x`` (the whole set at once: for small inputs)."""
        out = self.allocate(len(x))
        self.transform_into(out, 0, x)
        return out


_PRIME = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime


def _digest(x: np.ndarray) -> np.ndarray:
    """(B,) int64 FNV-1a hash of each row's float32 bits: a loop over the P columns, not the rows.

    A collision only makes a candidate pair, which the finder then measures exactly.
    """
    words = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)  # (B, P)
    h = np.full(len(words), 0xCBF29CE484222325, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            h ^= words[:, j]
            h *= _PRIME
    return h.view(np.int64)

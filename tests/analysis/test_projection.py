"""Projection: shape, determinism per seed, a map that keeps clusters apart, and
its kNN graph and fuzzy graph against brute force and umap's own (pure Python) code."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from samplescope.analysis.neighbors import NeighborIndex
from samplescope.analysis.projection import (
    PROJECTION_METHODS,
    Projection,
    _memberships,
    _smooth_knn_dist,
    fuzzy_graph,
    with_self,
)
from samplescope.errors import SamplescopeError


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """300 points in 16-D, three well separated directions (like ReLU class features)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 100)
    centres = np.abs(rng.normal(size=(3, 16))) * 3
    x = centres[labels] + np.abs(rng.normal(size=(300, 16)))
    return x.astype(np.float32), labels


def knn_accuracy(xy: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out 5-NN accuracy on the map."""
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1)[:, :5]
    votes = np.array([np.bincount(labels[row], minlength=3).argmax() for row in nn])
    return float((votes == labels).mean())


@pytest.mark.parametrize("method", PROJECTION_METHODS)
@pytest.mark.parametrize("fit_size", [None, 120])
def test_deterministic_and_separates(blobs, method, fit_size) -> None:
    x, labels = blobs
    kwargs = {"n_epochs": 150} if method != "pca" else {}
    a = Projection(method, random_state=3, fit_size=fit_size, **kwargs).fit_transform(x)
    b = Projection(method, random_state=3, fit_size=fit_size, **kwargs).fit_transform(x.copy())
    assert a.shape == (300, 2) and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert knn_accuracy(a, labels) > 0.95


def test_fitted_attributes(blobs) -> None:
    proj = Projection("umap", n_neighbors=10, n_epochs=50, fit_size=100)
    xy = proj.fit_transform(blobs[0])
    assert proj.embedding_ is xy
    assert proj.fit_rows_.shape == (100,) and np.all(np.diff(proj.fit_rows_) > 0)
    assert set(proj.timings_) == {"knn", "import", "layout", "place"}


def knn_with_self(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The engine's graph in umap's layout: itself first, then k - 1 neighbours."""
    return with_self(*NeighborIndex().fit(x).kneighbors(k=k - 1))


def test_map_uses_the_given_engine_and_places_every_row(blobs) -> None:
    x, labels = blobs
    engine = NeighborIndex().fit(x)
    proj = Projection("umap", n_epochs=100, fit_size=100)
    xy = proj.fit_transform(x, neighbors=engine)
    np.testing.assert_array_equal(xy, Projection("umap", n_epochs=100, fit_size=100).fit_transform(x))
    assert knn_accuracy(xy, labels) > 0.95
    rest = np.setdiff1d(np.arange(300), proj.fit_rows_)
    assert len(np.unique(xy[rest], axis=0)) == len(rest), "placed rows do not pile up on fitted ones"
    with pytest.raises(SamplescopeError, match="does not match the latent"):
        Projection("umap").fit_transform(x[:50], neighbors=engine)


def test_pca_is_scikit_learns(blobs) -> None:
    from sklearn.decomposition import PCA

    x = blobs[0]
    xy = Projection("pca", metric="euclidean").fit_transform(x)
    np.testing.assert_allclose(np.abs(xy), np.abs(PCA(2).fit_transform(x.astype(np.float64))), atol=1e-3)


def test_fuzzy_graph_matches_umap(blobs) -> None:
    """Against umap's own functions, run as plain Python (``.py_func``: no JIT, fast here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImportWarning)
        from umap.umap_ import compute_membership_strengths, smooth_knn_dist

    idx, dist = knn_with_self(blobs[0], 8)
    sigma, rho = _smooth_knn_dist(dist)
    ref_sigma, ref_rho = smooth_knn_dist.py_func(dist, 8.0)
    np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-4)  # float32 distances: binary-search noise
    np.testing.assert_allclose(rho, ref_rho, rtol=1e-6)
    _, _, vals, _ = compute_membership_strengths.py_func(idx, dist, ref_sigma, ref_rho)
    weight = _memberships(dist, sigma, rho)
    weight[idx == np.arange(300)[:, None]] = 0
    np.testing.assert_allclose(weight.ravel(), vals, rtol=1e-4, atol=1e-7)  # vals: float32

    dense = np.zeros((300, 300))
    dense[np.repeat(np.arange(300), 8), idx.ravel()] = weight.ravel()
    union = dense + dense.T - dense * dense.T
    np.testing.assert_allclose(fuzzy_graph(idx, dist).toarray(), union, atol=1e-6)


def test_errors(blobs) -> None:
    with pytest.raises(SamplescopeError, match="'mds' is unknown; use one of umap, tsne, pca"):
        Projection("mds").fit_transform(blobs[0])  # type: ignore[arg-type]
    with pytest.raises(SamplescopeError, match="NaN"):
        Projection("pca").fit_transform(np.full((5, 2), np.nan))
    with pytest.raises(SamplescopeError, match=r"\(N, D\)"):
        Projection("pca").fit_transform(np.zeros(5))
    with pytest.raises(SamplescopeError, match="fit_size"):
        Projection("umap", fit_size=1).fit_transform(blobs[0])

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
    np.testing.assert_array_equal(
        xy, Projection("umap", n_epochs=100, fit_size=100).fit_transform(x)
    )
    assert knn_accuracy(xy, labels) > 0.95
    rest = np.setdiff1d(np.arange(300), proj.fit_rows_)
    assert len(np.unique(xy[rest], axis=0)) == len(rest), (
        "placed rows do not pile up on fitted ones"
    )
    with pytest.raises(SamplescopeError, match="does not match the latent"):
        Projection("umap").fit_transform(x[:50], neighbors=engine)


def test_pca_is_scikit_learns(blobs) -> None:
    from sklearn.decomposition import PCA

    x = blobs[0]
    xy = Projection("pca", metric="euclidean").fit_transform(x)
    np.testing.assert_allclose(
        np.abs(xy), np.abs(PCA(2).fit_transform(x.astype(np.float64))), atol=1e-3
    )


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_pca_above_a_block_streams_the_same_axes(blobs, monkeypatch, metric) -> None:
    """Above PCA_BLOCK rows the axes come from IncrementalPCA fed block by block (the latent
    not copied whole): the same map, up to each axis's sign, as PCA over all rows at once."""
    from samplescope.analysis import projection

    x = blobs[0]
    whole = Projection("pca", metric=metric).fit_transform(x)
    monkeypatch.setattr(projection, "PCA_BLOCK", len(x) // 7)
    blocks = Projection("pca", metric=metric).fit_transform(x)
    assert blocks.dtype == np.float32 and blocks.shape == (len(x), 2)
    for axis in range(2):
        sign = np.sign(np.dot(whole[:, axis], blocks[:, axis]))
        np.testing.assert_allclose(sign * blocks[:, axis], whole[:, axis], atol=1e-3 * np.abs(whole).max())


def test_fuzzy_graph_matches_umap(blobs) -> None:
    """Against umap's own functions, run as plain Python (``.py_func``: no JIT, fast here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImportWarning)
        from umap.umap_ import compute_membership_strengths, smooth_knn_dist

    idx, dist = knn_with_self(blobs[0], 8)
    sigma, rho = _smooth_knn_dist(dist)
    ref_sigma, ref_rho = smooth_knn_dist.py_func(dist, 8.0)
    np.testing.assert_allclose(
        sigma, ref_sigma, rtol=1e-4
    )  # float32 distances: binary-search noise
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


class GraphEngine:
    """A neighbour engine whose kNN graph is given: ``kneighbors`` reads it (no search)."""

    def __init__(self, rows: np.ndarray, dist: np.ndarray) -> None:
        self.rows, self.dist = rows, dist

    def kneighbors(self, rows, k=10, mask=None):
        rows = np.asarray(rows)
        found, dist = self.rows[rows, :k].copy(), self.dist[rows, :k].copy()
        if mask is not None:
            found[~mask[np.maximum(found, 0)]] = -1
            dist[found < 0] = np.inf
        return found, dist


def test_rows_whose_neighbours_sit_in_two_clusters_land_in_one_not_between() -> None:
    """The map's streaks (issue 10): a placed row whose graph neighbours are split between two
    fitted clusters went to the weighted mean, on the empty line between them. Measured: the
    share of placed rows farther from every fitted row than fitted rows ever are from each
    other. (The weighted mean put all 150 here at x = 5; on the MNIST map it was 2.86% of
    the placed rows, 0.07% now.)"""
    rng = np.random.default_rng(0)
    fitted = np.vstack([rng.normal((0, 0), 0.3, (100, 2)), rng.normal((10, 0), 0.3, (100, 2))])
    a, b = np.arange(100), np.arange(100, 200)
    n, k = 350, 14
    rows = np.zeros((n, k), np.int64)
    rows[:200] = [rng.choice(a if i < 100 else b, k, replace=False) for i in range(200)]
    # 200-249: 8 neighbours in A, 6 in B; 250-299: 6 in A, 8 in B (interleaved, similar distances)
    # and 300-349 only those: placed in the second round
    for i in range(200, 300):
        many, few = (a, b) if i < 250 else (b, a)
        rows[i] = np.column_stack(
            [rng.choice(many, 7, replace=False), rng.choice(few, 7, replace=False)]
        ).ravel()
        rows[i, -1] = rng.choice(many)
    rows[300:] = [
        rng.choice(np.arange(200, 300), k, replace=False) for _ in range(50)
    ]  # second round
    dist = np.sort(rng.uniform(0.1, 0.12, (n, k)), axis=1).astype(np.float32)
    proj = Projection("umap", n_neighbors=k + 1, random_state=0)
    proj.fit_rows_ = np.arange(200)
    fit_idx, _ = with_self(rows[:200] % 100 + (np.arange(200)[:, None] // 100) * 100, dist[:200])
    xy = proj._place(n, fitted.astype(np.float32), GraphEngine(rows, dist), fit_idx)

    gaps = np.sqrt(((fitted[:, None] - fitted[None]) ** 2).sum(-1))
    np.fill_diagonal(gaps, np.inf)
    limit = gaps.min(axis=1).max()  # the farthest any fitted row is from its nearest one
    to_fitted = np.sqrt(((xy[200:, None] - fitted[None]) ** 2).sum(-1)).min(axis=1)
    assert (to_fitted > limit).mean() == 0, "placed rows in the empty space between the clusters"
    assert ((xy[200:, 0] < 2) | (xy[200:, 0] > 8)).all()  # in one cluster or the other
    assert (xy[200:250, 0] < 2).any() and (xy[250:300, 0] > 8).any()
    assert len(np.unique(xy[200:], axis=0)) == 150  # jittered, not stacked on one point


def test_umap_shows_its_epochs_only_when_verbose_and_caches_its_kernel(blobs, capsys) -> None:
    from umap import layouts

    Projection("umap", n_epochs=20, fit_size=None).fit_transform(blobs[0])
    assert "map:" not in capsys.readouterr().err
    Projection("umap", n_epochs=20, fit_size=None, verbose=True).fit_transform(blobs[0])
    err = capsys.readouterr().err
    assert "map:" in err and "epoch" in err
    # umap compiles its epoch kernel without numba's cache; the map turns the cache on
    kernel = layouts._nb_optimize_layout_euclidean_single_epoch
    assert type(kernel._cache).__name__ != "NullCache"

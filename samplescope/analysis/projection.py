"""Project latent vectors to 2-D for the map view.

    xy = Projection().fit_transform(latent)        # (N, D) -> (N, 2) float32

Methods:

``umap`` (default)
    UMAP's layout (``umap.umap_.simplicial_set_embedding``, the documented
    building block of ``umap.UMAP``) on a fuzzy kNN graph built here: neighbours
    from faiss and umap's ``smooth_knn_dist``/membership formulas vectorised in
    numpy. Same maths as ``umap.UMAP(precomputed_knn=...)``, minus the numba
    compilation of umap's parallel graph functions (~10 CPU-seconds in every
    fresh process).
``tsne``
    openTSNE (FFT gradients from 10,000 points, Barnes-Hut below) with uniform
    affinities over the same kNN graph. No numba, no JIT.
``pca``
    The top two principal axes: instant, but classes overlap.

Large inputs (more than ``fit_size`` rows) are mapped in two steps, as umap's
own ``transform`` starts new points: the method is fitted on a seeded random
subsample of ``fit_size`` rows, then every other row is placed at the
membership-weighted mean of its 5 nearest fitted rows (in the latent space).

Why this default (``bench/analyze_parts.py``, MNIST latents 70,000 x 64 from a
1-epoch CNN, 2 busy cores, CPU seconds incl. imports; kNN-10 accuracy on the
map / fraction of 10 latent neighbours kept):

    umap, fit_size=10,000 (default)    14 CPU-s   0.971 / 0.10
    umap, fit_size=20,000              22 CPU-s   0.974 / 0.11
    umap on all rows, 60 epochs        31 CPU-s   0.978 / 0.10
    umap.UMAP(precomputed_knn), 200 ep 73 CPU-s   0.980 / 0.12
    umap-learn's UMAP() defaults      191 CPU-s   0.980 / 0.09
    tsne, fit_size=10,000              96 CPU-s   0.971 / 0.12
    pca                                 3 CPU-s   0.646 / 0.02

(umap rows with a warm numba cache; the very first run after installing
umap-learn compiles and caches its numba code once, ~35 CPU-s more.)

Every method is deterministic for a given ``random_state`` on one machine with
the same ``n_jobs`` (faiss's float sums, hence near-tied neighbours, depend on
the thread count).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from typing import Any, Literal

import numpy as np

from samplescope.errors import SamplescopeError

logger = logging.getLogger(__name__)

__all__ = ["PROJECTION_METHODS", "Projection", "knn_search"]

PROJECTION_METHODS: tuple[str, ...] = ("umap", "tsne", "pca")

Metric = Literal["cosine", "euclidean"]

#: above this many (query, base) pairs neighbour search switches from exact to IVF
EXACT_PAIRS = 20_000 * 20_000
#: nearest fitted rows a row outside the fitted subsample is placed between
PLACE_NEIGHBORS = 5


# --------------------------------------------------------------------------- kNN


def _prepare(x: np.ndarray, metric: Metric) -> np.ndarray:
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        np.divide(x, norms, out=x, where=norms > 0)
    return x


def knn_search(
    base: np.ndarray,
    queries: np.ndarray | None,
    k: int,
    metric: Metric = "cosine",
    exact_pairs: int = EXACT_PAIRS,
    random_state: int | None = 0,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest ``base`` rows of each query as ``(indices, distances)``, (Q, k).

    ``queries=None`` means the base itself, with each row first in its own list.
    Distances are ``1 - cosine similarity`` or Euclidean. The search is exact up
    to ``exact_pairs`` (query, base) pairs; above that it uses a faiss IVF index
    (``2 sqrt(N)`` lists, 8 probed) whose recall@15 on MNIST latents is ~0.99
    at a tenth of the exact cost.
    """
    import faiss

    faiss.omp_set_num_threads(n_threads or min(8, os.cpu_count() or 1))
    xb = _prepare(base, metric)
    xq = xb if queries is None else _prepare(queries, metric)
    n, d = xb.shape
    k = min(k, n)
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    flat: Any = faiss.IndexFlat(d, faiss_metric)
    index: Any
    if len(xq) * n <= exact_pairs:
        index = flat
    else:
        n_lists = max(1, int(2 * np.sqrt(n)))
        index = faiss.IndexIVFFlat(flat, d, n_lists, faiss_metric)
        index.cp.seed = 1234 if random_state is None else int(random_state)
        index.cp.niter = 10
        index.cp.min_points_per_centroid = 1
        rng = np.random.default_rng(random_state)
        train = np.sort(rng.choice(n, min(n, 40 * n_lists), replace=False))
        index.train(xb[train])
        index.nprobe = 8
    index.add(xb)
    score, idx = index.search(xq, k)  # similarities (IP) or squared distances (L2)
    if (idx < 0).any():  # IVF found fewer than k candidates for some rows: exact for those
        rows = np.flatnonzero((idx < 0).any(axis=1))
        if index is not flat:
            flat = faiss.IndexFlat(d, faiss_metric)
            flat.add(xb)
        score[rows], idx[rows] = flat.search(xq[rows], k)
    if metric == "cosine":
        dist = np.clip(1.0 - score, 0.0, 2.0)
    else:
        dist = np.sqrt(np.maximum(score, 0.0))
    idx = idx.astype(np.int64)
    if queries is None:
        _self_first(idx, dist)
    return idx, dist.astype(np.float32)


def _self_first(idx: np.ndarray, dist: np.ndarray) -> None:
    """Put each row first in its own neighbour list (ties or IVF may have moved it)."""
    n, k = idx.shape
    for i in np.flatnonzero(idx[:, 0] != np.arange(n)):
        others = idx[i] != i
        rest_idx, rest_dist = idx[i][others][: k - 1], dist[i][others][: k - 1]
        idx[i, 0], dist[i, 0] = i, 0.0
        idx[i, 1:], dist[i, 1:] = rest_idx, rest_dist


# --------------------------------------------------------------------------- fuzzy graph


def _smooth_knn_dist(dist: np.ndarray, n_iter: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """umap's ``smooth_knn_dist`` (local_connectivity=1, bandwidth=1), all rows at once.

    ``dist`` (N, k) sorted ascending. Returns per-row ``sigma`` and ``rho`` (the
    distance to the nearest non-identical neighbour), found by the same binary
    search umap runs row by row.
    """
    n, k = dist.shape
    d = dist.astype(np.float64)
    target = np.log2(k)
    rho = np.where(d > 0, d, np.inf).min(axis=1)
    rho[~np.isfinite(rho)] = 0.0
    lo, hi, mid = np.zeros(n), np.full(n, np.inf), np.ones(n)
    shifted = d[:, 1:] - rho[:, None]  # umap skips column 0 (the point itself)
    active = np.ones(n, dtype=bool)
    for _ in range(n_iter):
        psum = np.where(shifted > 0, np.exp(-np.maximum(shifted, 0) / mid[:, None]), 1.0).sum(1)
        active &= np.abs(psum - target) >= 1e-5
        if not active.any():
            break
        over = active & (psum > target)
        under = active & (psum <= target)
        hi = np.where(over, mid, hi)
        lo = np.where(under, mid, lo)
        doubled = np.where(np.isinf(hi), mid * 2, (lo + hi) / 2)
        mid = np.where(over, (lo + hi) / 2, np.where(under, doubled, mid))
    floor = 1e-3 * np.where(rho > 0, d.mean(axis=1), d.mean())  # umap's MIN_K_DIST_SCALE
    return np.maximum(mid, floor), rho


def _memberships(dist: np.ndarray, sigma: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """umap's membership strengths: 1 up to ``rho``, then ``exp(-(d - rho) / sigma)``."""
    shifted = dist.astype(np.float64) - rho[:, None]
    scale = np.where(sigma > 0, sigma, 1.0)[:, None]
    decay = np.exp(-np.maximum(shifted, 0) / scale)
    return np.where((shifted <= 0) | (sigma[:, None] == 0), 1.0, decay)


def fuzzy_graph(idx: np.ndarray, dist: np.ndarray):  # -> scipy.sparse.coo_matrix
    """umap's fuzzy simplicial set (fuzzy union, ``set_op_mix_ratio=1``) of a kNN graph."""
    import scipy.sparse as sp

    n, k = idx.shape
    sigma, rho = _smooth_knn_dist(dist)
    weight = _memberships(dist, sigma, rho)
    weight[idx == np.arange(n)[:, None]] = 0.0
    rows = np.repeat(np.arange(n), k)
    g = sp.coo_matrix((weight.ravel(), (rows, idx.ravel())), shape=(n, n)).tocsr()
    g.eliminate_zeros()
    gt = g.T.tocsr()
    union = (g + gt - g.multiply(gt)).tocoo()
    union.eliminate_zeros()
    return union


# --------------------------------------------------------------------------- projection


class Projection:
    """Latent vectors (N, D) to map coordinates (N, 2), one verb: :meth:`fit_transform`.

    Parameters
    ----------
    method: ``"umap"`` (default), ``"tsne"`` or ``"pca"``.
    random_state: seed; the same seed, input and ``n_jobs`` give the same map.
    n_neighbors: size of the kNN graph umap and t-SNE work on.
    min_dist: umap's minimum distance between points in the map.
    n_epochs: umap epochs (default: umap's own, 500 below 10,000 fitted rows,
        200 from there) or t-SNE iterations (default 750, a third of them with
        early exaggeration).
    metric: ``"cosine"`` (matches :class:`~samplescope.analysis.NeighborIndex`)
        or ``"euclidean"``.
    fit_size: fit umap/t-SNE on at most this many rows (a seeded random
        subsample) and place the others from their nearest fitted rows;
        ``None`` fits every row.
    init: umap's starting layout: ``"pca"`` (fast, deterministic) or ``"spectral"``.
    n_jobs: threads for faiss and openTSNE; ``None`` = the machine's cores (max 8).

    Attributes (after :meth:`fit_transform`)
    ---------------------------------------
    embedding_: the (N, 2) float32 coordinates returned.
    fit_rows_: the rows the method was fitted on (sorted); the rest were placed.
    timings_: seconds per step (``knn``, ``import`` (umap), ``layout`` (incl.
        import), ``place``).
    """

    def __init__(
        self,
        method: Literal["umap", "tsne", "pca"] = "umap",
        random_state: int | None = 0,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        n_epochs: int | None = None,
        metric: Metric = "cosine",
        fit_size: int | None = 10_000,
        init: Literal["pca", "spectral"] = "pca",
        n_jobs: int | None = None,
    ):
        self.method = method
        self.random_state = random_state
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_epochs = n_epochs
        self.metric = metric
        self.fit_size = fit_size
        self.init = init
        self.n_jobs = n_jobs

    def fit_transform(self, latent: np.ndarray) -> np.ndarray:
        """Fit the map on ``latent`` (N, D) and return its (N, 2) float32 coordinates."""
        self._check_params()
        x = np.asarray(latent, dtype=np.float32)
        if x.ndim != 2 or len(x) < 3:
            raise SamplescopeError(f"latent must be (N, D) with N >= 3, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise SamplescopeError("latent contains NaN or infinite values; check the model output")
        n = len(x)
        n_jobs = self.n_jobs or min(8, os.cpu_count() or 1)
        self.timings_: dict[str, float] = {}

        if self.method == "pca" or self.fit_size is None or n <= self.fit_size:
            self.fit_rows_ = np.arange(n)
        else:
            rng = np.random.default_rng(self.random_state)
            self.fit_rows_ = np.sort(rng.choice(n, self.fit_size, replace=False))

        t = time.perf_counter()
        if self.method == "pca":
            xy = _pca(x, self.metric)
        else:
            fit = x[self.fit_rows_]
            k = max(2, min(self.n_neighbors, len(fit) - 1))
            idx, dist = knn_search(
                fit, None, k, self.metric, random_state=self.random_state, n_threads=n_jobs
            )
            self.timings_["knn"] = time.perf_counter() - t
            t = time.perf_counter()
            if self.method == "umap":
                fitted = self._umap(fit, idx, dist)
            else:
                fitted = self._tsne(fit, idx, dist, n_jobs)
            self.timings_["layout"] = time.perf_counter() - t
            t = time.perf_counter()
            xy = self._place(x, fit, fitted, k, n_jobs)
            self.timings_["place"] = time.perf_counter() - t
        self.embedding_ = np.ascontiguousarray(xy, dtype=np.float32)
        logger.debug("projection %s of %s: %s", self.method, x.shape, self.timings_)
        return self.embedding_

    def _check_params(self) -> None:
        if self.method not in PROJECTION_METHODS:
            raise SamplescopeError(
                f"projection method {self.method!r} is unknown; use one of "
                f"{', '.join(PROJECTION_METHODS)}"
            )
        if self.metric not in ("cosine", "euclidean"):
            raise SamplescopeError(
                f"metric={self.metric!r} is unknown; use 'cosine' or 'euclidean'"
            )
        if self.init not in ("pca", "spectral"):
            raise SamplescopeError(f"init={self.init!r} is unknown; use 'pca' or 'spectral'")
        if self.fit_size is not None and self.fit_size < 3:
            raise SamplescopeError(f"fit_size={self.fit_size} must be at least 3, or None")

    # ----------------------------------------------------------------- methods

    def _umap(self, x: np.ndarray, idx: np.ndarray, dist: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        with warnings.catch_warnings():
            # "Tensorflow not installed; ParametricUMAP will be unavailable"
            warnings.simplefilter("ignore", ImportWarning)
            from umap.umap_ import find_ab_params, simplicial_set_embedding
        self.timings_["import"] = time.perf_counter() - t

        graph = fuzzy_graph(idx, dist)
        n_epochs = self.n_epochs or (500 if len(x) < 10_000 else 200)  # umap's defaults
        init: str | np.ndarray = self.init
        if self.init == "pca":
            start = _pca(x, self.metric).astype(np.float64)
            init = 10 * start / max(float(np.abs(start).max()), 1e-12)  # umap's +-10 box
        a, b = find_ab_params(1.0, self.min_dist)
        random_state = np.random.RandomState(self.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            embedding, _ = simplicial_set_embedding(
                data=x,
                graph=graph,
                n_components=2,
                initial_alpha=1.0,
                a=a,
                b=b,
                gamma=1.0,
                negative_sample_rate=5,
                n_epochs=n_epochs,
                init=init,
                random_state=random_state,
                metric=self.metric,
                metric_kwds={},
                densmap=False,
                densmap_kwds={},
                output_dens=False,
                parallel=False,  # deterministic, and no compile of the parallel kernel
            )
        return np.asarray(embedding, dtype=np.float32)

    def _tsne(self, x: np.ndarray, idx: np.ndarray, dist: np.ndarray, n_jobs: int) -> np.ndarray:
        from openTSNE import TSNEEmbedding, affinity
        from openTSNE.nearest_neighbors import PrecomputedNeighbors

        # openTSNE wants neighbours without the point itself
        knn = PrecomputedNeighbors(idx[:, 1:], dist[:, 1:])
        aff = affinity.Uniform(knn_index=knn, k_neighbors=knn.k, n_jobs=n_jobs, verbose=False)
        init = _pca(x, self.metric)
        init = 1e-4 * init / max(float(init[:, 0].std()), 1e-12)  # openTSNE's init scale
        emb = TSNEEmbedding(
            init,
            aff,
            negative_gradient_method="auto",  # Barnes-Hut below 10,000 points, FFT above
            n_jobs=n_jobs,
            random_state=self.random_state,
            verbose=False,
        )
        # a third of the iterations with early exaggeration, like openTSNE's 250 + 500
        n_iter = 750 if self.n_epochs is None else max(3, self.n_epochs)
        emb = emb.optimize(n_iter=n_iter // 3, exaggeration=12, momentum=0.5)
        emb = emb.optimize(n_iter=n_iter - n_iter // 3, momentum=0.8)
        return np.asarray(emb, dtype=np.float32)

    def _place(
        self, x: np.ndarray, fit: np.ndarray, fitted: np.ndarray, k: int, n_jobs: int
    ) -> np.ndarray:
        """Fitted rows keep their coordinates; the others go to the weighted mean of theirs."""
        xy = np.empty((len(x), 2), dtype=np.float32)
        xy[self.fit_rows_] = fitted
        rest = np.setdiff1d(np.arange(len(x)), self.fit_rows_, assume_unique=True)
        if len(rest) == 0:
            return xy
        # few neighbours: their weighted mean stays local (on MNIST k=5 keeps more of each
        # point's latent neighbourhood than k=15, which pulls points to cluster centres)
        k = min(k, PLACE_NEIGHBORS)
        idx, dist = knn_search(
            fit, x[rest], k, self.metric, random_state=self.random_state, n_threads=n_jobs
        )
        # umap's transform: memberships from smooth_knn_dist, normalised per row
        sigma, rho = _smooth_knn_dist(dist)
        weight = _memberships(dist, sigma, rho)
        weight /= weight.sum(axis=1, keepdims=True)
        xy[rest] = np.einsum("qk,qkd->qd", weight, fitted[idx]).astype(np.float32)
        return xy


def _pca(x: np.ndarray, metric: Metric = "euclidean") -> np.ndarray:
    """First two principal components (N, 2), signs fixed so the result is deterministic."""
    x = x.astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    x = x - x.mean(axis=0)
    _, vecs = np.linalg.eigh(x.T @ x)  # (D, D): cheap even for N = 70,000
    axes = vecs[:, ::-1][:, :2]  # (D, <=2), largest eigenvalues first
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    out = x @ (axes * np.where(signs == 0, 1, signs))
    if out.shape[1] < 2:  # D == 1
        out = np.column_stack([out, np.zeros(len(x))])
    return out.astype(np.float32)

"""Project latent vectors to 2-D for the map view.

    xy = Projection().fit_transform(latent)        # (N, D) -> (N, 2) float32

Methods:

``umap`` (default)
    UMAP's layout (``umap.umap_.simplicial_set_embedding``, the documented
    building block of ``umap.UMAP``) on the fuzzy graph of the shared kNN graph
    (:class:`~samplescope.analysis.neighbors.NeighborIndex`), with umap's
    ``smooth_knn_dist``/membership formulas vectorised in numpy.
``tsne``
    openTSNE (FFT gradients from 10,000 points, Barnes-Hut below) with uniform
    affinities over the same kNN graph. No numba, no JIT.
``pca``
    The top two principal axes (scikit-learn's ``PCA``): instant, but classes overlap.

Why not ``umap.UMAP(precomputed_knn=...)``: ``bench/umap_library.py`` hands both the
same kNN graph, each in a fresh process as ``analyze`` runs (2 cores, 200 epochs, load
0.5-1.1, 2026-12-06): at 10,000 x 64 rows, the size this path fits the layout on, 5.8 s
against 11.7 s for umap-learn (2.0x; its ``fuzzy_simplicial_set`` is compiled by numba in
every process, 6.75 s on a first call and 0.10 s on a second in an earlier one-off), with
the same 10-NN label agreement of the map (0.7917 / 0.7922); at 50,000 rows laid out whole,
27.0 against 29.0 s (1.07x), where umap's own layout, which both call, is most of the time.
And umap-learn's ``transform`` needs its pynndescent index, which a precomputed graph does
not have, so it could not place the rows beyond the fitted sample.

Large inputs (more than ``fit_size`` rows) are mapped in two steps: the method
is fitted on a seeded random subsample of ``fit_size`` rows (its kNN graph: the
engine's search restricted to those rows), then every other row is placed by
propagation on the shared kNN graph of all rows, O(N k) with no further search:
in the first round in which some of a row's graph neighbours are placed (fitted
rows, then rows placed in earlier rounds), it goes to the membership-weighted mean
of those neighbours that lie in their strongest 2-D mode (within ``MODE_RADIUS``
map spreads of the neighbour with the most weight that close), plus a small seeded
jitter, and stays there. The plain weighted mean (used before) put a row whose
neighbours sit in two clusters on the straight line between them, and averaging
averages over rounds drew those lines out into streaks: on the 70,000-sample MNIST
map 2.86% of the placed rows lay farther from every fitted row than the fitted rows
ever are from their nearest one (the 99th percentile of that spacing); 0.07% now,
with the 10-NN label agreement 0.9881 -> 0.9870.

Every method is deterministic for a given ``random_state`` on one machine with
the same ``n_jobs`` (faiss's float sums, hence near-tied neighbours, depend on
the thread count).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from typing import TYPE_CHECKING, Literal

import numpy as np

from samplescope.engines.stages import map_rows
from samplescope.errors import SamplescopeError

if TYPE_CHECKING:
    from samplescope.analysis.neighbors import NeighborIndex

logger = logging.getLogger(__name__)

__all__ = ["PROJECTION_METHODS", "Projection"]

PROJECTION_METHODS: tuple[str, ...] = ("umap", "tsne", "pca")

Metric = Literal["cosine", "euclidean"]

#: rounds of propagation that place the rows outside the fitted subsample
PLACE_ROUNDS = 8
#: nearest fitted rows a row the graph cannot reach is placed between
PLACE_NEIGHBORS = 5
#: a placed row's neighbours count as one mode within this many map spreads of its anchor
MODE_RADIUS = 1.5
#: the jitter of a placed row, in map spreads (rows placed from the same few neighbours
#: would otherwise land on one point)
JITTER = 0.05
_MODE_BATCH = 32_768
#: rows placed per step (bounds the temporaries of the graph read and the weights)
_PLACE_CHUNK = 65_536


def with_self(rows: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """umap's and openTSNE's kNN layout: each row first in its own list, at distance 0."""
    n = len(rows)
    idx = np.column_stack([np.arange(n, dtype=np.int64), rows]).astype(np.int64)
    return idx, np.column_stack([np.zeros(n, np.float32), dist]).astype(np.float32)


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
    shifted = np.maximum(d[:, 1:] - rho[:, None], 0)  # umap skips column 0 (the point itself)
    # only the rows still searching are worked on (each round of the bisection settles some;
    # over all 64 rounds a 1M-row map did about half the work of every row every round)
    todo = np.arange(n)
    for _ in range(n_iter):
        m = mid[todo]
        psum = np.exp(-shifted[todo] / m[:, None]).sum(1)  # exp(0) = 1 where d <= rho, as umap
        searching = np.abs(psum - target) >= 1e-5
        todo, m, psum = todo[searching], m[searching], psum[searching]
        if not len(todo):
            break
        over = psum > target
        h = np.where(over, m, hi[todo])
        lo_t = np.where(over, lo[todo], m)
        hi[todo], lo[todo] = h, lo_t
        mid[todo] = np.where(over | ~np.isinf(h), (lo_t + h) / 2, m * 2)
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
    verbose: a progress bar over umap's epochs (``analyze`` shows it as ``map``).

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
        verbose: bool = False,
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
        self.verbose = verbose

    def fit_transform(self, latent: np.ndarray, neighbors: NeighborIndex | None = None) -> np.ndarray:
        """Fit the map on ``latent`` (N, D) and return its (N, 2) float32 coordinates.

        ``neighbors``: the engine already fitted on ``latent`` (``analyze`` builds
        it once for the map and the insights); None builds one here.
        """
        self._check_params()
        x = np.asarray(latent, dtype=np.float32)
        if x.ndim != 2 or len(x) < 3:
            raise SamplescopeError(f"latent must be (N, D) with N >= 3, got shape {x.shape}")
        if not all(np.isfinite(x[i : i + PCA_BLOCK]).all() for i in range(0, len(x), PCA_BLOCK)):
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
            xy = _pca(x, self.metric, self.random_state)
        else:
            neighbors = self._engine(x, neighbors, n_jobs)
            fit = x[self.fit_rows_]
            k = max(1, min(self.n_neighbors, len(fit)) - 1)  # neighbours besides the row itself
            if len(fit) == n:
                rows, dist = neighbors.kneighbors(k=k)
            else:  # the fitted rows' neighbours among themselves, as local positions
                mask = np.zeros(n, bool)
                mask[self.fit_rows_] = True
                found, dist = neighbors.kneighbors(self.fit_rows_, k=k, mask=mask)
                own = np.arange(len(fit))[:, None]  # a missing answer points at the row itself: weight 0
                rows = np.where(found >= 0, np.searchsorted(self.fit_rows_, found), own)
            idx, dist = with_self(rows, dist)
            self.timings_["knn"] = time.perf_counter() - t
            t = time.perf_counter()
            if self.method == "umap":
                fitted = self._umap(fit, idx, dist)
            else:
                fitted = self._tsne(fit, idx, dist, n_jobs)
            self.timings_["layout"] = time.perf_counter() - t
            t = time.perf_counter()
            xy = self._place(n, fitted, neighbors, idx)
            self.timings_["place"] = time.perf_counter() - t
        self.embedding_ = np.ascontiguousarray(xy, dtype=np.float32)
        logger.debug("projection %s of %s: %s", self.method, x.shape, self.timings_)
        return self.embedding_

    def _engine(self, x: np.ndarray, neighbors: NeighborIndex | None, n_jobs: int) -> NeighborIndex:
        from samplescope.analysis.neighbors import NeighborIndex

        metric = "cosine" if self.metric == "cosine" else "l2"
        if neighbors is None:
            seed = 0 if self.random_state is None else int(self.random_state)
            return NeighborIndex(metric=metric, random_state=seed, n_threads=n_jobs).fit(x)
        if getattr(neighbors, "n_samples_", None) != len(x) or neighbors.metric != metric:
            raise SamplescopeError(
                f"Projection.fit_transform: the neighbour index ({neighbors.metric}, "
                f"{getattr(neighbors, 'n_samples_', 0)} rows) does not match the latent "
                f"({metric}, {len(x)} rows); fit it on the same latent"
            )
        return neighbors

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
        _cache_layout_kernel()
        self.timings_["import"] = time.perf_counter() - t

        graph = fuzzy_graph(idx, dist)
        n_epochs = self.n_epochs or (500 if len(x) < 10_000 else 200)  # umap's defaults
        init: str | np.ndarray = self.init
        if self.init == "pca":
            start = _pca(x, self.metric, self.random_state).astype(np.float64)
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
                tqdm_kwds={"disable": not self.verbose, "desc": "map", "unit": "epoch", "leave": False},
            )
        return np.asarray(embedding, dtype=np.float32)

    def _tsne(self, x: np.ndarray, idx: np.ndarray, dist: np.ndarray, n_jobs: int) -> np.ndarray:
        from openTSNE import TSNEEmbedding, affinity
        from openTSNE.nearest_neighbors import PrecomputedNeighbors

        # openTSNE wants neighbours without the point itself
        knn = PrecomputedNeighbors(idx[:, 1:], dist[:, 1:])
        aff = affinity.Uniform(knn_index=knn, k_neighbors=knn.k, n_jobs=n_jobs, verbose=False)
        init = _pca(x, self.metric, self.random_state)
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
        self, n: int, fitted: np.ndarray, neighbors: NeighborIndex, fit_idx: np.ndarray
    ) -> np.ndarray:
        """Fitted rows keep their coordinates; each other row is placed once, in the first round
        in which some of its graph neighbours are placed, in their strongest 2-D mode."""
        xy = np.zeros((n, 2), dtype=np.float32)
        xy[self.fit_rows_] = fitted
        placed = np.zeros(n, bool)
        placed[self.fit_rows_] = True
        rest = np.flatnonzero(~placed)
        if len(rest) == 0:
            return xy
        spread = _spread(fitted, fit_idx)
        rng = np.random.default_rng(self.random_state)
        k = max(1, min(self.n_neighbors - 1, n - 1))
        # each row's graph neighbours and umap's membership strengths (as its transform weighs a
        # new point's neighbours), in chunks: float32 and int32 where they fit, so the (R, k)
        # arrays and the search's float64 temporaries stay small at millions of rows
        index_type = np.int32 if n < 2**31 else np.int64

        def weights(_start: int, _stop: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            nbr = np.empty((len(rows), k), index_type)
            weight = np.empty((len(rows), k), np.float32)
            for start in range(0, len(rows), _PLACE_CHUNK):
                found, dist = neighbors.kneighbors(rows[start : start + _PLACE_CHUNK], k=k)
                _, d_self = with_self(found, dist)
                sigma, rho = _smooth_knn_dist(np.where(np.isfinite(d_self), d_self, 0.0))
                weight[start : start + len(found)] = _memberships(d_self, sigma, rho)[:, 1:] * (found >= 0)
                nbr[start : start + len(found)] = np.maximum(found, 0)
            return nbr, weight

        # row by row independent: here, or on an engine's workers (Ray); the rounds below read the
        # rows placed in the round before, so they stay here
        nbr, weight = map_rows(weights, len(rest), arrays=(rest,), align=_PLACE_CHUNK, what="map placement")
        todo = np.arange(len(rest))
        for _ in range(PLACE_ROUNDS):  # fitted rows first, then rows placed in earlier rounds
            done, waiting = [], []
            for start in range(0, len(todo), _PLACE_CHUNK):
                rows = todo[start : start + _PLACE_CHUNK]
                w = weight[rows] * placed[nbr[rows]]
                ok = w.sum(axis=1) > 0
                if ok.any():
                    done.append((rows[ok], _mode_mean(xy[nbr[rows[ok]]], w[ok], spread, rng)))
                waiting.append(rows[~ok])
            if not done:
                break
            for rows, pos in done:  # fixed from here on: no averaging of averages
                xy[rest[rows]] = pos
                placed[rest[rows]] = True
            todo = np.concatenate(waiting)
        lost = rest[todo]  # no graph path to a placed row: its nearest fitted rows
        if len(lost):
            mask = np.zeros(n, bool)
            mask[self.fit_rows_] = True
            found, d = neighbors.kneighbors(lost, k=min(PLACE_NEIGHBORS, len(self.fit_rows_)), mask=mask)
            _, d_self = with_self(found, d)
            sigma, rho = _smooth_knn_dist(d_self)
            w = _memberships(d_self, sigma, rho)[:, 1:] * (found >= 0)
            xy[lost] = _mode_mean(xy[np.maximum(found, 0)], w, spread, rng)
        return xy


def _cache_layout_kernel() -> None:
    """Keep umap's compiled layout kernel on disk (numba's cache) for the next process.

    umap-learn compiles its SGD epoch kernel without numba's cache, which costs
    about 2.4 s of CPU in every process that draws a map (0.3 s when loaded from
    the cache; measured on a 300-point map, 2-core machine at load 8). The kernel's
    source is umap's own; only where numba keeps the machine code changes. If the
    name moves in a later umap, or no cache folder is writable, the map is drawn as
    before.
    """
    try:
        from umap import layouts

        kernel = layouts._nb_optimize_layout_euclidean_single_epoch
        if getattr(kernel, "_cache", None) is not None and type(kernel._cache).__name__ == "NullCache":
            kernel.enable_caching()
    except Exception as exc:  # noqa: BLE001 - a cache is an optimisation, never a failure
        logger.debug("umap's layout kernel stays uncached: %s", exc)


def _spread(fitted: np.ndarray, fit_idx: np.ndarray) -> float:
    """How far apart latent neighbours lie on the fitted map: the median, over fitted rows, of
    the median 2-D distance from a row to its fitted kNN-graph neighbours."""
    if fit_idx.shape[1] < 2:
        return 0.0
    step = np.linalg.norm(fitted[fit_idx[:, 1:]] - fitted[:, None, :], axis=2)
    return float(np.median(np.median(step, axis=1)))


def _mode_mean(
    pos: np.ndarray, weight: np.ndarray, spread: float, rng: np.random.Generator
) -> np.ndarray:
    """For each row, the weighted mean of those of its placed neighbours (``pos`` (m, k, 2),
    ``weight`` (m, k), 0 for unplaced ones) that lie within ``MODE_RADIUS * spread`` of the
    neighbour with the most weight that close (ties: the nearer in the latent, the earlier
    column), plus a seeded jitter of ``JITTER * spread``.

    The plain weighted mean puts a row whose neighbours sit in two clusters on the straight
    line between them, in empty space (the map's streaks); the mode is always one of them.
    """
    radius2 = (MODE_RADIUS * spread) ** 2
    out = np.empty((len(pos), 2), np.float32)
    for start in range(0, len(pos), _MODE_BATCH):  # bounds the (m, k, k) temporaries
        p = pos[start : start + _MODE_BATCH].astype(np.float32)
        w = weight[start : start + _MODE_BATCH].astype(np.float32)
        x, y = p[:, :, 0], p[:, :, 1]
        gap = x[:, :, None] - x[:, None, :]  # (m, k, k): x and y apart, no (m, k, k, 2) array
        gap *= gap
        dy = y[:, :, None] - y[:, None, :]
        dy *= dy
        gap += dy
        near = gap <= radius2
        # each neighbour's weight within reach of it (weight 0 counts nothing), as one batched product
        mass = np.matmul(near.astype(np.float32), w[:, :, None])[:, :, 0]
        mass[w <= 0] = -1.0
        anchor = mass.argmax(axis=1)
        keep = w * near[np.arange(len(p)), anchor]
        out[start : start + len(p)] = np.einsum("mk,mkd->md", keep, p) / keep.sum(axis=1, keepdims=True)
    if spread > 0:
        out += rng.normal(0.0, JITTER * spread, size=out.shape).astype(np.float32)
    return out


#: rows up to which PCA is scikit-learn's ``PCA`` on all of them at once (a float64 copy:
#: 128 MiB at 64 dimensions); above it ``IncrementalPCA`` over blocks of this many rows gives
#: the same axes (it keeps the exact mean and spread) without holding the matrix twice
PCA_BLOCK = 262_144
#: components ``IncrementalPCA`` keeps between blocks: all of them up to this many dimensions
PCA_KEPT = 64


def _normalised_rows(x: np.ndarray, metric: Metric) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return x


def _pca(x: np.ndarray, metric: Metric = "euclidean", random_state: int | None = 0) -> np.ndarray:
    """First two principal components (N, 2) by scikit-learn (its sign convention is deterministic):
    ``PCA`` up to ``PCA_BLOCK`` rows, ``IncrementalPCA`` fed and applied block by block above."""
    from sklearn.decomposition import PCA, IncrementalPCA

    n, d = x.shape
    m = min(2, d)
    if n <= PCA_BLOCK:
        rows = _normalised_rows(x, metric)
        # covariance_eigh: one (D, D) eigendecomposition, cheap for N >> D as in a latent matrix
        solver = "covariance_eigh" if n > 10 * d else "full"
        pca = PCA(n_components=m, svd_solver=solver, random_state=random_state).fit(rows)
    else:  # blocks of at least PCA_BLOCK / 2 rows, each more than the components kept
        # every component kept up to 64 dimensions, so the first two are PCA's exactly (keeping
        # only two between blocks drifts: 0.17 of the map's scale off on 300 x 16 blobs)
        pca = IncrementalPCA(n_components=min(d, PCA_KEPT))
        for rows in np.array_split(np.arange(n), -(-n // PCA_BLOCK)):
            pca.partial_fit(_normalised_rows(x[rows[0] : rows[-1] + 1], metric))
    axes = pca.components_[:m].T  # (D, m)
    out = np.zeros((n, 2), np.float32)
    for start in range(0, n, PCA_BLOCK):  # (D, 2) products a block at a time, the latent read once
        # fitted and placed here, whatever the engine: a (D, 2) product per row costs less than
        # sending the rows to Ray's workers (100,000 rows: 0.2 s here, 12.8 s as Ray tasks)
        rows = _normalised_rows(x[start : start + PCA_BLOCK], metric)
        out[start : start + PCA_BLOCK, :m] = (rows - pca.mean_) @ axes
    return out

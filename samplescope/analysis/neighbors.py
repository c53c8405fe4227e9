"""The one nearest-neighbour engine: every search in samplescope goes through it.

    index = NeighborIndex().fit(latent)                     # (N, D); builds the kNN graph
    rows, dist = index.kneighbors(k=10)                     # (N, 10): the shared graph, self excluded
    rows, dist = index.kneighbors(k=10, mask=is_train)      # each row's 10 nearest training rows
    rows, sim = index.query([12, 40], k=10)                 # (2, 10), most similar first
    rows, sim = index.query([12], k=10, mask=is_test)       # only rows where is_test
    rows, sim = index.query_set(cluster_rows, k=10)         # closest to the set's mean direction
    index.save(folder); NeighborIndex.load(folder, latent)  # what ``analyze`` keeps for ``similar``

Two engines behind one interface, chosen by size:

exact (``n <= exact_max``)
    Brute force (``faiss.IndexFlat``: BLAS in blocks, memory bounded by the query
    batch), so answers equal a numpy search.
approximate (``n > exact_max``)
    A seeded faiss IVF index with lists of about ``list_rows`` (128) rows, at least
    ``2 sqrt(N)`` lists. Its ``nprobe`` grows from 4 by half at build time until the
    recall@10 against exact search, measured on a sample of rows, reaches
    ``target_recall`` (then a bisection finds the fewest probes between the last two); the measured recall is kept in ``recall_`` (and ``analyze``
    writes it to run.json). Up to ``flat_quantizer_max`` lists (1,024: about 131,000
    rows, MNIST's 70,000 included) the lists are found by a flat scan of their
    centroids, trained by k-means on 40 rows per list; above it the centroids come
    from a two-level k-means (sqrt(lists) coarse clusters, each split by its share)
    on 16 rows per list, and an HNSW graph over them finds a query's lists (each row's
    own list when it is added, its rows walked in the order of their coarse cluster so
    that consecutive walks share the cache). So a
    query costs ``nprobe`` lists of a constant size plus a log(N) walk: the kNN graph
    grows as N log N, not as N^1.5 as with ``2 sqrt(N)`` lists
    (``bench/neighbor_speed.py`` measures both in one process). An index tuned to a
    radius (the duplicate finder's) searches at the add's walk width, so that a row's
    near twin walks to the list the row was put in.

``fit`` also computes the kNN graph of every row over all rows (``graph_k``
neighbours, self excluded): the map, the insight finders and ``similar`` read
it instead of searching again: one IVF search per row. (A graph built list by
list, each list's rows against the rows of the lists nearest its centroid in one
BLAS product, was tried and measured slower: recall@10 0.95 took 93 lists at 1M,
and for the duplicate finder's radius-tuned 1M sketch 433 s wall against 32 s;
docs/scale.md.) A search restricted by a mask that leaves at most
``exact_max`` rows runs exactly over those rows (a small cached index), a
larger one filters inside the scan (an ``IDSelector``), with ``nprobe`` scaled
by the share of rows the mask leaves, so restricted answers keep the recall.

Why the threshold: building the exact graph costs N^2 D; at 30,000 x 64 it
takes about as long as the IVF graph of 70,000 (``bench/analyze_speed.py``).

Saved files (names in :mod:`samplescope.store.layout`): the graph as two
``.npy`` arrays and, for the approximate engine, the faiss index, its lists in a
file of their own (:mod:`.ivf_file`). Nothing is pickled. ``load`` memory-maps
them, so ``serve`` does not rebuild anything. With ``fit(x, spill_to=folder)``
(``analyze``) neither the lists nor the graph are ever held in memory: the lists
are filled into their file and the graph is searched into its files there.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from samplescope.errors import NotFoundError, RunError, SamplescopeError
from samplescope.store import layout

logger = logging.getLogger(__name__)

__all__ = ["EXACT_MAX", "GRAPH_K", "NeighborIndex"]

#: at most this many rows are searched exactly; above it an IVF index is built
EXACT_MAX = 30_000
#: neighbours per row in the saved kNN graph (umap's default 15, and one spare)
GRAPH_K = 16
#: rows per IVF list above the exact threshold: per-query cost stays flat as N grows
LIST_ROWS = 128
#: up to this many lists a flat scan of the centroids finds a query's lists; above, HNSW
FLAT_QUANTIZER_MAX = 1024
_SUBSET_CACHE_SIZE = 4  # masked sub-indexes kept per NeighborIndex
_BATCH = 8192  # queries per faiss call: bounds the (Q, k) temporaries
_GRAPH_BLOCK = 262_144  # graph rows read at a time by kneighbors
_EXACT_BLOCK = 262_144  # rows prepared at a time when the whole matrix is scanned or added
_TRAIN_ROWS_PER_LIST = 16  # k-means training rows per list above the flat quantizer
_ADD_EF_SEARCH = 8  # HNSW quantizer's search width when each row is assigned its list
#: its width while ``fit`` tunes nprobe and searches the graph's rows: on a 1M synthetic latent
#: (7,813 lists) 16 finds the same 14 lists as 64 for 97.8% of rows (97.9% at 64: both miss
#: the same few) at half the walk's cost (29 vs 58 us a row; the 14 lists' scan: 118 us)
_GRAPH_EF_SEARCH = 16
_QUERY_EF_SEARCH = 64  # ... and for queries of the saved index (similar): each costs little
_RECALL_SAMPLE = 500  # rows whose exact 10-NN measure the index's recall
#: the tuning stops only this far above the target: a 500-row estimate of recall@10 has a
#: standard error of about 0.003, and queries restricted to a subset (a mask) lose a little
#: more (a masked train-only search measured 0.944 at a sample estimate of 0.95)
_RECALL_MARGIN = 0.01


def _normalise(x: np.ndarray) -> np.ndarray:
    """Float32, C-contiguous, rows scaled to unit length (zero rows stay zero)."""
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def _drop_stale(folder: Path, keep: list[str]) -> None:
    """Remove the index files of an earlier analysis in ``folder`` that ``keep`` does not name."""
    from samplescope.analysis.ivf_file import FILES

    for name in (layout.NEIGHBOR_INDEX, *FILES):
        if name not in keep:
            (folder / name).unlink(missing_ok=True)


def recall_at(
    found: np.ndarray, truth: np.ndarray,
    found_dist: np.ndarray | None = None, truth_dist: np.ndarray | None = None,
) -> float:
    """Mean share of each row of ``truth`` (Q, k) that ``found`` (Q, >=k) contains.

    With distances (smaller is nearer) ties count: a found row as near as the k-th true
    one is a hit even when it is another row at that distance. Without this, a dataset
    holding copies (MNIST repeated, a duplicated image) scores low whichever of the equal
    copies an approximate search returns, and the tuning raises ``nprobe`` towards a full
    scan (at 1M MNIST repeated 16 times the graph did not finish in 12 minutes).
    """
    k = truth.shape[1]
    if not k:
        return 1.0
    valid = truth >= 0
    if found_dist is None or truth_dist is None:
        hits = (found[:, :, None] == truth[:, None, :]).any(axis=1) & valid
        return float(hits.sum() / max(1, valid.sum()))
    found, found_dist = found[:, :k], found_dist[:, :k]
    worst = np.where(valid, truth_dist, -np.inf).max(axis=1, keepdims=True)
    # float32 kernels differ in the last bits; no more: a latent's 10th neighbour can lie at a
    # cosine distance of 5e-4, where an absolute 1e-5 took recall 0.81 -> 0.83 (MNIST, 4 probes)
    tol = 1e-6 + 1e-5 * np.abs(worst)
    near = (found >= 0) & (found_dist <= worst + tol)
    return float(np.minimum(near.sum(axis=1), valid.sum(axis=1)).sum() / max(1, valid.sum()))


class NeighborIndex:
    """Nearest neighbours of one (N, D) matrix: exact up to ``exact_max`` rows, IVF above.

    Parameters
    ----------
    metric:
        ``"cosine"`` (similarity in [-1, 1], distance 1 - similarity) or ``"l2"``.
    exact_max:
        Largest N searched exactly; 0 forces the approximate index.
    graph_k:
        Neighbours per row in the kNN graph built by :meth:`fit` (0: no graph).
    target_recall:
        Recall@10 against exact search the approximate index is tuned to reach.
    random_state:
        Seed of the IVF training sample, its k-means and the recall sample.
    recall_radius:
        None: the IVF index is tuned to the recall@10 of ordinary queries. A distance:
        tuned to find, for queries lying within that distance of an indexed row (a
        sample of rows moved by it in random directions), their nearest row; the
        duplicate finder needs only pairs that close, which few lists hold.
    list_rows, flat_quantizer_max:
        Rows per IVF list (at least ``2 sqrt(N)`` lists), and the most lists whose
        centroids are scanned flat (above: an HNSW graph over the centroids).
    n_threads:
        Threads faiss may use for ``fit`` and batches of 64+ queries; ``None`` means
        the machine's cores, at most 8. Smaller batches always run on one thread.

    Attributes (after :meth:`fit` or :meth:`load`)
    ----------------------------------------------
    kind_: ``"exact"`` or ``"ivf"``. index_: the faiss index.
    n_samples_, n_features_: shape of the fitted matrix.
    nprobe_: lists an IVF search probes (None when exact).
    recall_: recall@10 of the graph against exact search on a sample (1.0 when exact).
    graph_rows_, graph_dist_: (N, graph_k) the kNN graph, nearest first, self excluded.
    """

    def __init__(
        self,
        metric: Literal["cosine", "l2"] = "cosine",
        exact_max: int = EXACT_MAX,
        graph_k: int = GRAPH_K,
        target_recall: float = 0.95,
        random_state: int = 0,
        n_threads: int | None = None,
        recall_radius: float | None = None,
        list_rows: int = LIST_ROWS,
        flat_quantizer_max: int = FLAT_QUANTIZER_MAX,
    ):
        self.list_rows = list_rows
        self.flat_quantizer_max = flat_quantizer_max
        self.metric = metric
        self.exact_max = exact_max
        self.graph_k = graph_k
        self.target_recall = target_recall
        self.random_state = random_state
        self.n_threads = n_threads
        self.recall_radius = recall_radius

    # ----------------------------------------------------------------- fit

    def fit(self, x: np.ndarray, spill_to: str | Path | None = None) -> NeighborIndex:
        """Index ``x`` (N, D) and build its kNN graph; row i of it is answered as row i.

        With ``spill_to`` (a folder that outlives this object) the graph is searched straight
        into memory-mapped files there, never held whole in memory, and the index is then
        :meth:`spill`-ed there: the same answers and files as ``fit(x).spill(spill_to)``."""
        self._check_params()
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[0] == 0:
            raise SamplescopeError(f"NeighborIndex.fit: x must be a non-empty (N, D) array, got {x.shape}")
        self._set_threads()
        self.n_samples_, self.n_features_ = x.shape
        self._subsets: OrderedDict[bytes, tuple[Any, np.ndarray]] = OrderedDict()
        t = time.perf_counter()
        if self.n_samples_ <= self.exact_max:
            vectors = self._prepare(x)
            self._source: Any = vectors  # rows for queries by row
            self._source_prepared = True  # already normalised (cosine)
            self.kind_, self.nprobe_ = "exact", None
            self.index_ = self._flat(vectors)
        else:
            # the IVF lists hold the one prepared copy; rows are re-prepared per batch from x
            self._source, self._source_prepared = x, False
            self.kind_ = "ivf"
            self.index_ = self._ivf(self._lists_folder(spill_to))
        self.seconds_ = {"index": time.perf_counter() - t}  # train, add and tune nprobe (index_parts_)
        t = time.perf_counter()
        self.recall_ = 1.0
        if self.graph_k > 0:
            k = min(self.graph_k, self.n_samples_ - 1)
            from samplescope.engines.stages import map_rows

            # every row's k nearest: here, or on an engine's workers (Ray), batch for batch the same
            # rows are searched grouped by their own list: consecutive queries then probe mostly
            # the same lists, which stay in the CPU's cache (about 2x faster at 100k and at 1M)
            by_list = self._row_lists() if self.kind_ == "ivf" else None
            out = self._mapped_graph(spill_to, k)
            self.graph_rows_, self.graph_dist_ = map_rows(
                lambda start, stop: self._search_rows(np.arange(start, stop), k, None, dtype=np.int32,
                                                      by_list=by_list, out=out),
                self.n_samples_, align=_BATCH, what="kNN graph",
            )
            del by_list
        self._assign = None  # the rows' lists: only the graph's search order needed them
        if self.kind_ == "ivf":
            self.recall_ = self._measure_recall()
            self._set_ef_search(_QUERY_EF_SEARCH)
        self.seconds_["graph"] = time.perf_counter() - t
        logger.info("neighbours: %s over %s, recall@10 %.3f (%s)", self.kind_, x.shape, self.recall_,
                    ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds_.items()))
        return self if spill_to is None else self.spill(spill_to)

    @staticmethod
    def _lists_folder(folder: str | Path | None) -> Path | None:
        """Where the IVF lists are filled (:mod:`.ivf_file`), or None (in memory): ``spill_to``,
        unless an engine's workers (Ray) are to be sent the index whole."""
        from samplescope.engines import stages

        return None if folder is None or stages.active() is not None else Path(folder)

    def _mapped_graph(self, folder: str | Path | None, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The graph's two (N, k) arrays as new memory-mapped files in ``folder`` (the names
        :meth:`save` writes), or None: without a folder, or when an engine's workers search the
        rows (their chunks come back to this process and are joined there)."""
        from samplescope.engines import stages

        if folder is None or stages.active() is not None:
            return None
        from samplescope.store.folder import mapped_array

        folder, shape = Path(folder), (self.n_samples_, k)
        return (mapped_array(folder / layout.NEIGHBOR_ROWS, shape, np.int32),
                mapped_array(folder / layout.NEIGHBOR_DISTANCES, shape, np.float32))

    def _check_params(self) -> None:
        if self.metric not in ("cosine", "l2"):
            raise SamplescopeError(f"NeighborIndex(metric={self.metric!r}) is not supported; use 'cosine' or 'l2'")
        if int(self.exact_max) < 0 or int(self.graph_k) < 0:
            raise SamplescopeError(
                f"NeighborIndex(exact_max={self.exact_max}, graph_k={self.graph_k}): both must be >= 0"
            )
        if self.recall_radius is not None and not float(self.recall_radius) >= 0.0:
            raise SamplescopeError(f"NeighborIndex(recall_radius={self.recall_radius}) must be >= 0 or None")
        if not 0.0 < float(self.target_recall) <= 1.0:
            raise SamplescopeError(f"NeighborIndex(target_recall={self.target_recall}) must be in (0, 1]")

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            return _normalise(x)
        return np.array(x, dtype=np.float32, order="C", copy=True)

    def _faiss_metric(self) -> int:
        import faiss

        return faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2

    def _flat(self, vectors: np.ndarray) -> Any:
        import faiss

        index = faiss.IndexFlat(vectors.shape[1], self._faiss_metric())
        index.add(vectors)
        return index

    def _blocks(self) -> Any:
        """(start, prepared rows) of the whole matrix in blocks: no full prepared copy."""
        for start in range(0, self.n_samples_, _EXACT_BLOCK):
            yield start, self._prepare(np.asarray(self._source[start : start + _EXACT_BLOCK]))

    def _nlist(self) -> int:
        n = self.n_samples_
        return max(1, min(max(int(2 * math.sqrt(n)), n // max(1, int(self.list_rows))), n // 39))

    def _ivf(self, lists_to: Path | None = None) -> Any:
        """The trained, filled IVF index with its nprobe tuned; with ``lists_to`` its lists
        are filled into a file there (:func:`.ivf_file.fill`), not into memory."""
        import faiss

        n, d = self.n_samples_, self.n_features_
        nlist = self._nlist()
        rng = np.random.default_rng(self.random_state)
        hnsw = self._quantizer = self._coarse = None
        started = time.perf_counter()
        if nlist <= self.flat_quantizer_max:
            index = faiss.IndexIVFFlat(faiss.IndexFlat(d, self._faiss_metric()), d, nlist, self._faiss_metric())
            index.cp.seed = int(self.random_state)
            index.cp.niter = 10  # the lists need only partition the space, not be good clusters
            index.cp.min_points_per_centroid = 1  # no faiss warning on small training sets
            train = np.sort(rng.choice(n, min(n, 40 * nlist), replace=False))
            index.train(self._vectors(train))
        else:
            train = np.sort(rng.choice(n, min(n, _TRAIN_ROWS_PER_LIST * nlist), replace=False))
            centroids = self._two_level_centroids(self._vectors(train), nlist)
            quantizer = faiss.IndexHNSWFlat(d, 32, self._faiss_metric())
            quantizer.hnsw.efConstruction = 40
            quantizer.hnsw.efSearch = _QUERY_EF_SEARCH
            quantizer.add(centroids)
            index = faiss.IndexIVFFlat(quantizer, d, len(centroids), self._faiss_metric())
            self._quantizer = hnsw = quantizer  # the IVF index does not own it until written and read back
            nlist = len(centroids)
        if hnsw is not None:
            # adding asks for each row's one nearest list: a narrow walk finds it (the exact
            # nearest centroid for 99.7% of 50,000 rows of a 1M synthetic latent, at a fifth
            # of the cost of efSearch 64: 15 vs 75 us a row)
            hnsw.hnsw.efSearch = _ADD_EF_SEARCH
        parts = self.index_parts_ = {"train": time.perf_counter() - started}
        started = time.perf_counter()
        # each row's list as add would choose it; the rows added block by block as they are
        # assigned (in memory), or written list by list into the lists' file afterwards
        assign = self._assign = self._assign_rows(index, add=lists_to is None)
        self._coarse = None
        if lists_to is not None:
            from samplescope.analysis import ivf_file

            ivf_file.fill(index, lists_to / layout.NEIGHBOR_IVF_LISTS, assign, self._vectors)
        if hnsw is not None:
            # fit's own searches (queries get 64 after it). Tuned to a radius, they walk as the
            # add did: a row's near twin then walks to the list the row was put in. On the 1M
            # synthetic sketch, efSearch 16 needed 2 probes (recall 0.988, graph 13.2 s) and
            # found 1,966 of the 2,000 rows of planted copies; 8 needs 1 (0.996, 8.4 s), all 2,000
            hnsw.hnsw.efSearch = _GRAPH_EF_SEARCH if self.recall_radius is None else _ADD_EF_SEARCH
        parts["add"] = time.perf_counter() - started
        started = time.perf_counter()
        # the smallest nprobe whose recall on a sample reaches the target
        sample = self._recall_sample()
        self.index_ = index
        if self.recall_radius is None:
            truth, truth_score = self._exact_rows(sample, 10)
            truth_dist = self._distance(truth_score, truth)
            self._recall_truth = (sample, truth, truth_dist)
            # from 4 probes: a latent that reaches the target plus the margin there scans half
            # what 8 probes scan (MNIST's 64-value latent: 0.958 at 4, just short, 0.994 at 8;
            # the synthetic class mixture: 0.91 at 4, 0.99 at 8)
            index.nprobe = min(4, nlist)

            def recall() -> float:
                found, dist = self._search_rows(sample, 10, None)
                return recall_at(found, truth, dist, truth_dist)
        else:
            queries = self._near_queries(sample)
            near_score, near = self._exact_knn(queries, 1)
            near_dist = self._distance(near_score, near)
            index.nprobe = 1

            def recall() -> float:
                found, score = self._search(queries, 1, None)
                return recall_at(found, near, self._distance(score, found), near_dist)
        goal = min(1.0, self.target_recall + _RECALL_MARGIN)
        short = 0  # the largest nprobe seen to fall short of the goal
        while True:
            got = recall()
            if got >= goal or index.nprobe >= nlist:
                break
            short = int(index.nprobe)
            index.nprobe = min(nlist, math.ceil(index.nprobe * 1.5))  # 4, 6, 9, 14, 21, 32, ...
        # then the fewest probes between the two that still reach it (recall does not fall as
        # probes are added): at 2M synthetic rows 21 probes passed where 14 fell short
        best, lo, hi = int(index.nprobe), short + 1, int(index.nprobe) - 1
        while got >= goal and lo <= hi:
            index.nprobe = (lo + hi) // 2
            trial = recall()
            if trial >= goal:
                best, got, hi = int(index.nprobe), trial, int(index.nprobe) - 1
            else:
                lo = int(index.nprobe) + 1
        index.nprobe = best
        self._radius_recall = got
        self.nprobe_ = best
        parts["tune"] = time.perf_counter() - started  # the exact truth of the sample, and its searches
        return index

    def _assign_rows(self, index: Any, add: bool = False) -> np.ndarray:
        """(N,) int32: each row's nearest list, as ``index.add`` would choose it, in blocks;
        with ``add`` each block is also added to ``index`` there (prepared once, in row order).

        With an HNSW quantizer each block's rows walk to their list in the order of their
        coarse cluster (:meth:`_two_level_centroids`), not in row order: consecutive walks then
        visit the same few centroids, which stay in the CPU's cache. The lists are the same
        (each walk depends only on its row); on the 10M synthetic latent (78,129 lists) the
        walk cost 12.9 us a row in row order and 7.2 in coarse order, the ordering included."""
        import faiss

        assign = np.empty(self.n_samples_, np.int32)
        coarse = self._coarse
        for start, block in self._blocks():
            at = slice(start, start + len(block))
            if coarse is None:
                assign[at] = index.quantizer.assign(block, 1)[:, 0]
            else:
                _, cluster = coarse.search(block, 1)
                order = np.argsort(cluster[:, 0], kind="stable")
                assign[at][order] = index.quantizer.assign(np.ascontiguousarray(block[order]), 1)[:, 0]
            if add:
                lists = np.ascontiguousarray(assign[at], dtype=np.int64)
                index.add_core(len(block), faiss.swig_ptr(block), None, faiss.swig_ptr(lists))
        return assign

    def _set_ef_search(self, ef: int) -> None:
        """The HNSW quantizer's search width (no-op with a flat quantizer)."""
        import faiss

        quantizer = getattr(self, "_quantizer", None)
        if quantizer is None:
            quantizer = faiss.downcast_index(self.index_.quantizer)
        if isinstance(quantizer, faiss.IndexHNSW):
            quantizer.hnsw.efSearch = int(ef)

    def _two_level_centroids(self, sample: np.ndarray, nlist: int) -> np.ndarray:
        """About ``nlist`` k-means centroids of ``sample``: sqrt(nlist) coarse clusters, each split by its share.

        One k-means over all lists costs sample x lists per iteration (N^2 / 128 at 16
        rows per list); split in two levels it costs about sample x 2 sqrt(lists).
        """
        import faiss

        d = sample.shape[1]
        spherical = self.metric == "cosine"
        n_coarse = max(1, int(math.sqrt(nlist)))
        coarse = faiss.Kmeans(d, n_coarse, niter=10, seed=int(self.random_state), spherical=spherical,
                              min_points_per_centroid=1, max_points_per_centroid=2000)
        coarse.train(sample)
        self._coarse = coarse.index  # the add walks each block's rows in this order (_assign_rows)
        _, assign = coarse.index.search(sample, 1)
        assign = assign[:, 0]
        order = np.argsort(assign, kind="stable")
        counts = np.bincount(assign, minlength=n_coarse)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        parts = []
        for c in range(n_coarse):
            members = sample[order[bounds[c] : bounds[c + 1]]]
            k = int(min(len(members), max(1, round(len(members) * nlist / len(sample)))))
            if k == 0:
                continue
            fine = faiss.Kmeans(d, k, niter=10, seed=int(self.random_state) + 1 + c, spherical=spherical,
                                min_points_per_centroid=1)
            fine.train(np.ascontiguousarray(members))
            parts.append(fine.centroids)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def _near_queries(self, sample: np.ndarray) -> np.ndarray:
        """Sample rows moved ``recall_radius`` in seeded random directions (unit length for cosine)."""
        rng = np.random.default_rng(self.random_state + 2)
        step = rng.standard_normal((len(sample), self.n_features_)).astype(np.float32)
        step *= float(self.recall_radius) / np.maximum(np.linalg.norm(step, axis=1, keepdims=True), 1e-12)
        queries = self._vectors(sample) + step
        return _normalise(queries) if self.metric == "cosine" else np.ascontiguousarray(queries)

    def _recall_sample(self) -> np.ndarray:
        rng = np.random.default_rng(self.random_state + 1)
        return np.sort(rng.choice(self.n_samples_, min(self.n_samples_, _RECALL_SAMPLE), replace=False))

    def _exact_knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact (score, rows) of the k nearest rows to each query, scanning prepared blocks."""
        import faiss

        higher_better = self.metric == "cosine"
        best_s = np.full((len(queries), 0), np.nan, np.float32)
        best_i = np.full((len(queries), 0), -1, np.int64)
        for start, block in self._blocks():
            score, found = faiss.knn(queries, block, min(k, len(block)), metric=self._faiss_metric())
            best_s = np.concatenate([best_s, score], axis=1)
            best_i = np.concatenate([best_i, found + start], axis=1)
            order = np.argsort(-best_s if higher_better else best_s, axis=1, kind="stable")[:, :k]
            best_s = np.take_along_axis(best_s, order, axis=1)
            best_i = np.take_along_axis(best_i, order, axis=1)
        return best_s, best_i

    def _exact_rows(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest other rows of ``rows``, by a flat scan (the recall reference)."""
        k = min(k, self.n_samples_ - 1)
        score, found = self._exact_knn(self._vectors(rows), k + 1)
        return self._drop_self(rows, found, score, k)

    def _measure_recall(self) -> float:
        """Recall@10 of the kNN graph (or of a search when there is none) on a sample."""
        if self.recall_radius is not None:
            return float(self._radius_recall)
        sample, truth, truth_dist = self._recall_truth
        if self.graph_k >= 10:
            found, dist = self.graph_rows_[sample, :10], self.graph_dist_[sample, :10]
        else:
            found, dist = self._search_rows(sample, 10, None)
        return recall_at(found, truth, dist, truth_dist)

    def _set_threads(self, n_queries: int | None = None) -> None:
        import faiss

        n = self.n_threads or min(8, os.cpu_count() or 1)
        if n_queries is not None and n_queries < 64:
            # faiss splits small batches by query: extra threads only add fork/join
            # overhead, which dominates a single query on a busy machine (~4x slower)
            n = 1
        faiss.omp_set_num_threads(max(1, int(n)))

    # ----------------------------------------------------------------- save / load

    def save(self, folder: str | Path) -> list[str]:
        """Write the kNN graph (.npy) and, when approximate, the faiss index; returns the names.

        The index is written as :mod:`.ivf_file`'s three files (its lists memory-mapped when
        read), or, while an engine's workers (Ray) are sent the index whole, as one faiss file
        with its lists inline. After :meth:`spill` the files written there are placed into
        ``folder`` (hard links where the file system allows, else copies) instead.
        """
        self._check_fitted()
        if self.metric != "cosine" or not hasattr(self, "graph_rows_"):
            raise SamplescopeError("NeighborIndex.save: only a cosine index with its graph is saved with a run")
        return self._write(Path(folder))

    def _write(self, folder: Path) -> list[str]:
        """:meth:`save` for any metric (``spill``'s scratch copies of an l2 index too)."""
        import faiss

        from samplescope.analysis import ivf_file

        names = [layout.NEIGHBOR_ROWS, layout.NEIGHBOR_DISTANCES]
        spilled: Path | None = getattr(self, "_spilled_to", None)
        if spilled is not None and spilled.resolve() != folder.resolve():
            from samplescope.store.folder import place_file

            names += self._index_names
            for name in names:
                place_file(spilled / name, folder / name)
            _drop_stale(folder, names)
            return names
        for name, graph in ((layout.NEIGHBOR_ROWS, self.graph_rows_), (layout.NEIGHBOR_DISTANCES, self.graph_dist_)):
            if isinstance(graph, np.memmap) and Path(str(graph.filename)).resolve() == (folder / name).resolve():
                graph.flush()  # searched straight into this file (fit's spill_to)
            else:
                np.save(folder / name, graph, allow_pickle=False)
        index_names: list[str] = []
        if self.kind_ == "ivf" and self._lists_folder(folder) is None:
            faiss.write_index(self.index_, str(folder / layout.NEIGHBOR_INDEX))
            index_names = [layout.NEIGHBOR_INDEX]
        elif self.kind_ == "ivf":
            index_names = ivf_file.write(self.index_, folder)
        self._index_names = index_names
        names += index_names
        _drop_stale(folder, names)
        return names

    def spill(self, folder: str | Path) -> NeighborIndex:
        """Write the graph and the IVF index to ``folder`` and answer from memory-mapped copies.

        What ``analyze`` does after :meth:`fit`, so that the graph (N x graph_k x 8 bytes) and
        the IVF lists (a prepared copy of the latent) are file pages the kernel may drop,
        not memory of the process, while the map and the insights run; answers are the same.
        ``folder`` must outlive this object (a later :meth:`save` places its files). The exact
        engine keeps its index in memory (at most ``exact_max`` rows).
        """
        self._check_fitted()
        if not hasattr(self, "graph_rows_"):
            raise SamplescopeError("NeighborIndex.spill: this index has no graph (graph_k=0) to spill")
        folder = Path(folder)
        self._write(folder)
        self.graph_rows_ = np.load(folder / layout.NEIGHBOR_ROWS, mmap_mode="r", allow_pickle=False)
        self.graph_dist_ = np.load(folder / layout.NEIGHBOR_DISTANCES, mmap_mode="r", allow_pickle=False)
        if self.kind_ == "ivf":
            nprobe = self.index_.nprobe
            self.index_ = self._read_index(folder)
            self.index_.nprobe = nprobe
            self._quantizer = None  # owned by the index read back
        self._spilled_to = folder
        return self

    def _read_index(self, folder: Path) -> Any:
        """The saved IVF index in ``folder``, its lists memory-mapped (either layout of :meth:`save`)."""
        import faiss

        from samplescope.analysis import ivf_file

        if (folder / layout.NEIGHBOR_IVF).exists():
            return ivf_file.read(folder, self.n_samples_, self.n_features_)
        return faiss.read_index(str(folder / layout.NEIGHBOR_INDEX), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)

    @classmethod
    def load(cls, folder: str | Path, latent: np.ndarray, n_threads: int | None = None) -> NeighborIndex:
        """The index :meth:`save` wrote next to ``latent`` (the run's latent.npy), without rebuilding it.

        The exact engine scans the latent rows (normalised once); the approximate
        one memory-maps its faiss file. Query rows are read from ``latent``.
        """
        folder = Path(folder)
        rows_file, dist_file = folder / layout.NEIGHBOR_ROWS, folder / layout.NEIGHBOR_DISTANCES
        if not rows_file.exists() or not dist_file.exists():
            raise NotFoundError(
                f"{folder} has no saved neighbour graph ({layout.NEIGHBOR_ROWS}); "
                f"run `samplescope analyze {folder}` again"
            )
        self = cls(n_threads=n_threads)
        self.graph_rows_ = np.load(rows_file, mmap_mode="r", allow_pickle=False)
        self.graph_dist_ = np.load(dist_file, mmap_mode="r", allow_pickle=False)
        latent = np.asarray(latent)
        if self.graph_rows_.shape[0] != latent.shape[0]:
            raise RunError(
                f"{rows_file} has {self.graph_rows_.shape[0]} rows but the latent matrix has "
                f"{latent.shape[0]}; run `samplescope analyze {folder}` again"
            )
        self.graph_k = self.graph_rows_.shape[1]
        self.n_samples_, self.n_features_ = latent.shape
        self._subsets = OrderedDict()
        self.recall_ = math.nan  # measured at build time; analyze keeps it in run.json
        if (folder / layout.NEIGHBOR_IVF).exists() or (folder / layout.NEIGHBOR_INDEX).exists():
            self.kind_ = "ivf"
            self.index_ = self._read_index(folder)
            self.nprobe_ = int(self.index_.nprobe)
            self.exact_max = min(self.exact_max, self.n_samples_ - 1)
            self._source, self._source_prepared = latent, False  # normalised per query
        else:
            self.kind_, self.nprobe_ = "exact", None
            self.exact_max = max(self.exact_max, self.n_samples_)
            self._source, self._source_prepared = _normalise(latent), True
            self.index_ = self._flat(self._source)
        return self

    # ----------------------------------------------------------------- checks

    def _check_fitted(self) -> None:
        if not hasattr(self, "index_"):
            raise SamplescopeError("this NeighborIndex is not fitted yet; call .fit(latent) first")

    def _rows(self, rows: np.ndarray | list[int] | int) -> np.ndarray:
        rows = np.atleast_1d(np.asarray(rows)).astype(np.int64, copy=False)
        if rows.ndim != 1:
            raise SamplescopeError(f"rows must be a 1-D array of row indices, got {rows.shape}")
        bad = (rows < 0) | (rows >= self.n_samples_)
        if bad.any():
            raise NotFoundError(
                f"row {int(rows[bad][0])} is not in the index; rows must be in [0, {self.n_samples_ - 1}]"
            )
        return rows

    def _vectors(self, rows: np.ndarray) -> np.ndarray:
        """(Q, D) prepared vectors of ``rows`` (a copy)."""
        x = np.asarray(self._source[rows], dtype=np.float32)
        return x if self._source_prepared else self._prepare(x)

    def _check_k(self, k: int) -> int:
        if int(k) < 1:
            raise SamplescopeError(f"k={k} must be at least 1")
        return int(k)

    def _mask(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.n_samples_,):
            raise SamplescopeError(
                f"mask must be a bool array of shape ({self.n_samples_},), got {mask.dtype} {mask.shape}"
            )
        return mask

    # ----------------------------------------------------------------- the graph

    def kneighbors(
        self, rows: np.ndarray | list[int] | None = None, k: int = 10, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each row's ``k`` nearest other rows as ``(rows, distances)``, (Q, k), nearest first.

        ``rows=None`` means every row. Without a mask and with ``k <= graph_k``
        the answer is read from the kNN graph (no search); with ``mask`` only
        rows where it is True are returned. Distances are ``1 - cosine`` or
        Euclidean; missing answers are row -1 with distance inf.
        """
        self._check_fitted()
        k = self._check_k(k)
        query = np.arange(self.n_samples_) if rows is None else self._rows(rows)
        if not hasattr(self, "graph_rows_") or k > self.graph_rows_.shape[1]:
            return self._search_rows(query, k, None if mask is None else self._mask(mask))
        if mask is not None:
            mask = self._mask(mask)
        found = np.empty((len(query), k), np.int64)
        found_dist = np.empty((len(query), k), np.float32)
        for start in range(0, len(query), _GRAPH_BLOCK):  # bounded (block, graph_k) temporaries
            part = query[start : start + _GRAPH_BLOCK]
            at = slice(start, start + len(part))
            graph = np.asarray(self.graph_rows_[part])  # (Q, graph_k)
            dist = np.asarray(self.graph_dist_[part], dtype=np.float32)
            if mask is None:
                found[at], found_dist[at] = graph[:, :k], dist[:, :k]
                continue
            # the k nearest allowed rows are the first k allowed entries of a row's sorted
            # graph list whenever it holds k of them; only the other rows are searched
            allowed = mask[np.maximum(graph, 0)] & (graph >= 0)
            order = np.argsort(~allowed, axis=1, kind="stable")[:, :k]  # allowed entries first, in order
            found[at] = np.take_along_axis(graph, order, axis=1)
            found_dist[at] = np.take_along_axis(dist, order, axis=1)
            short = np.flatnonzero(allowed.sum(axis=1) < k)
            if len(short):
                found[start + short], found_dist[start + short] = self._search_rows(part[short], k, mask)
        return found, found_dist

    def _search_rows(
        self, rows: np.ndarray, k: int, mask: np.ndarray | None, dtype: Any = np.int64,
        by_list: np.ndarray | None = None, out: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """k nearest other rows of ``rows`` in batches, as (rows, distances); with ``by_list``
        (each row's IVF list) searched in the order of their lists, answered in ``rows``' order;
        with ``out`` written into those (len(rows), k) arrays."""
        out_rows, out_dist = out if out is not None else (np.empty((len(rows), k), dtype),
                                                          np.empty((len(rows), k), np.float32))
        order = None if by_list is None else np.argsort(by_list[rows], kind="stable")
        for start in range(0, len(rows), _BATCH):
            at = slice(start, start + _BATCH) if order is None else order[start : start + _BATCH]
            chunk = rows[at]
            found, score = self._search(self._vectors(chunk), k + 1, mask)
            found, score = self._drop_self(chunk, found, score, k)
            out_rows[at] = found
            out_dist[at] = self._distance(score, found)
        return out_rows, out_dist

    def _row_lists(self) -> np.ndarray:
        """(N,) int32: the IVF list each row was added to."""
        import faiss

        if getattr(self, "_assign", None) is not None:
            return self._assign
        lists = np.full(self.n_samples_, -1, np.int32)
        invlists = self.index_.invlists
        for i in range(self.index_.nlist):
            size = invlists.list_size(i)
            if size:
                lists[faiss.rev_swig_ptr(invlists.get_ids(i), size).view(np.int64)] = i
        return lists

    def _distance(self, score: np.ndarray, found: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            dist = np.clip(1.0 - score, 0.0, 2.0)
        else:
            dist = np.sqrt(np.maximum(score, 0.0))
        dist = dist.astype(np.float32)
        dist[found < 0] = np.inf
        return dist

    @staticmethod
    def _drop_self(
        rows: np.ndarray, found: np.ndarray, score: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Drop each query row from its own answer (or, when absent, the extra last one)."""
        keep = found != rows[:, None]
        keep[keep.all(axis=1), -1] = False
        width = found.shape[1] - 1
        found = found[keep].reshape(len(rows), width)[:, :k]
        score = score[keep].reshape(len(rows), width)[:, :k]
        if width < k:
            pad = ((0, 0), (0, k - width))
            found = np.pad(found, pad, constant_values=-1)
            score = np.pad(score, pad, constant_values=np.nan)
        return found, score

    # ----------------------------------------------------------------- queries

    def query(
        self,
        query_rows: np.ndarray | list[int] | int,
        k: int = 10,
        mask: np.ndarray | None = None,
        exclude_self: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows most similar to each row in ``query_rows`` (cosine).

        Returns ``(rows, similarity)``, both (Q, k), most similar first. With
        ``mask`` (bool, length N) only rows where it is True are returned; with
        ``exclude_self`` a query row never appears in its own answer. When fewer
        than ``k`` rows qualify the tail is padded with row -1 and similarity NaN.
        """
        self._check_fitted()
        self._check_cosine("query")
        rows = self._rows(query_rows)
        k = self._check_k(k)
        if exclude_self:
            found, dist = self.kneighbors(rows, k, mask)
            sim = (1.0 - dist).astype(np.float32)
        else:
            found, sim = self._search(self._vectors(rows), k, None if mask is None else self._mask(mask))
        sim[found < 0] = np.nan
        return found, sim

    def query_vectors(
        self, vectors: np.ndarray, k: int = 10, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` indexed rows most similar to each of ``vectors`` (Q, D) or (D,)."""
        self._check_fitted()
        self._check_cosine("query_vectors")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None]
        if vectors.ndim != 2 or vectors.shape[1] != self.n_features_:
            raise SamplescopeError(
                f"vectors must be (Q, {self.n_features_}) to match the index, got {vectors.shape}"
            )
        return self._search(_normalise(vectors), self._check_k(k), None if mask is None else self._mask(mask))

    def query_set(
        self, rows: np.ndarray | list[int], k: int = 10, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows outside the set most similar to the set as a whole.

        The set is summarised by the normalised mean of its members' normalised
        vectors. Returns ``(rows, similarity)``, each (k,), most similar first.
        """
        self._check_fitted()
        self._check_cosine("query_set")
        rows = self._rows(rows)
        if len(rows) == 0:
            raise SamplescopeError("query_set needs at least one row; the set was empty")
        allowed = np.ones(self.n_samples_, dtype=bool) if mask is None else self._mask(mask).copy()
        allowed[rows] = False
        centre = self._vectors(rows).mean(axis=0, keepdims=True)  # (1, D)
        found, sim = self._search(_normalise(centre), self._check_k(k), allowed, selector=True)
        return found[0], sim[0]

    def _check_cosine(self, verb: str) -> None:
        if self.metric != "cosine":
            raise SamplescopeError(f"NeighborIndex.{verb} answers similarities; use kneighbors with metric 'l2'")

    # ----------------------------------------------------------------- internals

    def _subset(self, mask: np.ndarray, bits: np.ndarray) -> tuple[Any, np.ndarray]:
        """An exact index of only the rows where ``mask`` is True, and those rows' ids (cached)."""
        key = hashlib.blake2b(bits.tobytes(), digest_size=16).digest()
        if key in self._subsets:
            self._subsets.move_to_end(key)
            return self._subsets[key]
        ids = np.flatnonzero(mask)
        parts = [self._vectors(ids[s : s + _BATCH]) for s in range(0, len(ids), _BATCH)]
        index = self._flat(np.concatenate(parts) if parts else np.empty((0, self.n_features_), np.float32))
        self._subsets[key] = (index, ids)
        if len(self._subsets) > _SUBSET_CACHE_SIZE:
            self._subsets.popitem(last=False)
        return index, ids

    def _search(
        self, vectors: np.ndarray, k: int, mask: np.ndarray | None, selector: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw faiss answers (rows, scores): similarity for cosine, squared distance for l2."""
        import faiss

        self._set_threads(len(vectors))
        index: Any = self.index_
        ids: np.ndarray | None = None
        params = None
        n_allowed = self.n_samples_
        if mask is not None:
            bits = np.packbits(mask, bitorder="little")  # bit i of the bitmap = row i
            n_allowed = int(mask.sum())
            if selector or (self.kind_ == "ivf" and n_allowed > self.exact_max):
                sel = faiss.IDSelectorBitmap(bits)  # type: ignore[call-arg, arg-type]
                if self.kind_ == "ivf":  # probe more lists when the mask leaves fewer rows
                    share = max(n_allowed, 1) / self.n_samples_
                    nprobe = min(self.index_.nlist, math.ceil(self.nprobe_ / share))
                    params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)  # type: ignore[call-arg]
                else:
                    params = faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]
            elif n_allowed < self.n_samples_:
                index, ids = self._subset(mask, bits)
        k_search = min(k, index.ntotal if params is None else n_allowed)
        if k_search == 0:
            found = np.full((len(vectors), 0), -1, dtype=np.int64)
            score = np.zeros((len(vectors), 0), dtype=np.float32)
        else:
            score, found = index.search(np.ascontiguousarray(vectors), k_search, params=params)
        if ids is not None:
            found = np.where(found >= 0, ids[np.maximum(found, 0)], -1)
        if k_search < k:
            pad = ((0, 0), (0, k - k_search))
            found = np.pad(found, pad, constant_values=-1)
            score = np.pad(score, pad, constant_values=np.nan)
        score = score.astype(np.float32, copy=False)
        score[found < 0] = np.nan
        return found.astype(np.int64, copy=False), score

    def info(self) -> dict[str, Any]:
        """What run.json's analysis section records about the engine."""
        self._check_fitted()
        out: dict[str, Any] = {
            "engine": self.kind_,
            "metric": self.metric,
            "n": int(self.n_samples_),
            "graph_k": int(self.graph_rows_.shape[1]) if hasattr(self, "graph_rows_") else 0,
            "exact_max": int(self.exact_max),
            "recall_at_10": round(float(self.recall_), 4),
            "recall_sample": int(min(self.n_samples_, _RECALL_SAMPLE)) if self.kind_ == "ivf" else 0,
        }
        if self.kind_ == "ivf":
            import faiss

            quantizer = faiss.downcast_index(self.index_.quantizer)
            out.update(nlist=int(self.index_.nlist), nprobe=int(self.nprobe_),
                       quantizer="hnsw" if isinstance(quantizer, faiss.IndexHNSW) else "flat")
        if hasattr(self, "seconds_"):  # built here, not loaded
            out["seconds"] = {k: round(v, 2) for k, v in self.seconds_.items()}
            if getattr(self, "index_parts_", None):  # train the lists, add the rows, tune nprobe
                out["index_seconds"] = {k: round(v, 2) for k, v in self.index_parts_.items()}
        return out

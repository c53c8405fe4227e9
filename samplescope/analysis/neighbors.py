"""Exact nearest neighbours in the latent space, by cosine similarity.

    index = NeighborIndex().fit(latent)                     # (N, D)
    rows, sim = index.query([12, 40], k=10)                 # (2, 10), most similar first
    rows, sim = index.query([12], k=10, mask=is_test)       # only rows where is_test
    rows, sim = index.query_set(cluster_rows, k=10)         # closest to the set's mean direction

Search is exhaustive (``faiss.IndexFlatIP`` on L2-normalised float32 copies), so
the answers equal a brute-force numpy search. A mask is answered from an index
of only the masked rows (the last few are cached, so repeated queries within
one subset cost a scan of that subset only); ``query_set`` applies its
exclusions inside the search with a bitmap ``IDSelector``. Nothing is
over-fetched and filtered (beyond the one extra neighbour that lets a query row
be dropped from its own answer), so results stay exact.

Rebuilding the index costs one normalised copy of the latent matrix, so it is
not saved: refit from the stored latent vectors.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from typing import Any, Literal

import numpy as np

from samplescope.errors import NotFoundError, SamplescopeError

logger = logging.getLogger(__name__)

__all__ = ["NeighborIndex"]

_SUBSET_CACHE_SIZE = 4  # masked sub-indexes kept per NeighborIndex


def _normalise(x: np.ndarray) -> np.ndarray:
    """Float32, C-contiguous, rows scaled to unit length (zero rows stay zero)."""
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


class NeighborIndex:
    """Exact cosine-similarity neighbour search over one latent matrix.

    Parameters
    ----------
    metric:
        Only ``"cosine"`` for now (similarity in [-1, 1], higher is closer).
    n_threads:
        Threads faiss may use for ``fit`` and batches of 64+ queries; ``None`` means
        the machine's cores, at most 8. Smaller batches always run on one thread.

    Attributes (after :meth:`fit`)
    ------------------------------
    index_: the ``faiss.IndexFlatIP`` holding the normalised vectors.
    n_samples_, n_features_: shape of the fitted latent matrix.
    """

    def __init__(self, metric: Literal["cosine"] = "cosine", n_threads: int | None = None):
        self.metric = metric
        self.n_threads = n_threads

    # ----------------------------------------------------------------- fit

    def fit(self, latent: np.ndarray) -> NeighborIndex:
        """Index ``latent`` (N, D); row i of it is answered as row i."""
        import faiss

        if self.metric != "cosine":
            raise SamplescopeError(f"metric={self.metric!r} is not supported; use 'cosine'")
        latent = np.asarray(latent)
        if latent.ndim != 2 or latent.shape[0] == 0:
            raise SamplescopeError(f"latent must be a non-empty (N, D) array, got {latent.shape}")
        self._set_threads()
        vectors = _normalise(latent)
        self.n_samples_, self.n_features_ = vectors.shape
        self.index_ = faiss.IndexFlatIP(self.n_features_)
        self.index_.add(vectors)
        del vectors
        # a view of the index's own storage: row lookups without a second copy
        self._xb = faiss.rev_swig_ptr(self.index_.get_xb(), self.n_samples_ * self.n_features_)
        self._xb = self._xb.reshape(self.n_samples_, self.n_features_)
        self._subsets: OrderedDict[bytes, tuple[Any, np.ndarray]] = OrderedDict()
        return self

    def _set_threads(self, n_queries: int | None = None) -> None:
        import faiss

        n = self.n_threads or min(8, os.cpu_count() or 1)
        if n_queries is not None and n_queries < 64:
            # faiss splits small batches by query: extra threads only add fork/join
            # overhead, which dominates a single query on a busy machine (~4x slower)
            n = 1
        faiss.omp_set_num_threads(max(1, int(n)))

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
                f"row {int(rows[bad][0])} is not in the index; rows must be in "
                f"[0, {self.n_samples_ - 1}]"
            )
        return rows

    def _vectors(self, rows: np.ndarray) -> np.ndarray:
        return self._xb[rows]  # (Q, D) copy, already normalised

    # ----------------------------------------------------------------- queries

    def query(
        self,
        query_rows: np.ndarray | list[int] | int,
        k: int = 10,
        mask: np.ndarray | None = None,
        exclude_self: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows most similar to each row in ``query_rows``.

        Returns ``(rows, similarity)``, both (Q, k), most similar first. With
        ``mask`` (bool, length N) only rows where it is True are returned; with
        ``exclude_self`` a query row never appears in its own answer. When fewer
        than ``k`` rows qualify the tail is padded with row -1 and similarity NaN.
        """
        self._check_fitted()
        rows = self._rows(query_rows)
        k = self._check_k(k)
        if not exclude_self:
            return self._search(self._vectors(rows), k, mask)
        # one extra neighbour, then drop the query row itself (exact: if the row is not
        # among the k + 1 it ties with them, and the first k are a correct answer)
        found, sim = self._search(self._vectors(rows), k + 1, mask)
        keep = found != rows[:, None]
        keep[keep.all(axis=1), -1] = False  # self absent: drop the extra last one
        return found[keep].reshape(len(rows), k), sim[keep].reshape(len(rows), k)

    def query_vectors(
        self, vectors: np.ndarray, k: int = 10, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` indexed rows most similar to each of ``vectors`` (Q, D) or (D,)."""
        self._check_fitted()
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None]
        if vectors.ndim != 2 or vectors.shape[1] != self.n_features_:
            raise SamplescopeError(
                f"vectors must be (Q, {self.n_features_}) to match the index, got {vectors.shape}"
            )
        return self._search(_normalise(vectors), self._check_k(k), mask)

    def query_set(
        self, rows: np.ndarray | list[int], k: int = 10, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows outside the set most similar to the set as a whole.

        The set is summarised by the normalised mean of its members' normalised
        vectors. Returns ``(rows, similarity)``, each (k,), most similar first.
        """
        self._check_fitted()
        rows = self._rows(rows)
        if len(rows) == 0:
            raise SamplescopeError("query_set needs at least one row; the set was empty")
        allowed = np.ones(self.n_samples_, dtype=bool) if mask is None else self._mask(mask).copy()
        allowed[rows] = False
        centre = self._vectors(rows).mean(axis=0, keepdims=True)  # (1, D)
        found, sim = self._search(_normalise(centre), self._check_k(k), allowed, selector=True)
        return found[0], sim[0]

    # ----------------------------------------------------------------- internals

    def _check_k(self, k: int) -> int:
        if int(k) < 1:
            raise SamplescopeError(f"k={k} must be at least 1")
        return int(k)

    def _mask(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.n_samples_,):
            raise SamplescopeError(
                f"mask must be a bool array of shape ({self.n_samples_},), "
                f"got {mask.dtype} {mask.shape}"
            )
        return mask

    def _subset(self, mask: np.ndarray, bits: np.ndarray) -> tuple[Any, np.ndarray]:
        """An index of only the rows where ``mask`` is True, and those rows' ids (cached)."""
        import faiss

        key = hashlib.blake2b(bits.tobytes(), digest_size=16).digest()
        if key in self._subsets:
            self._subsets.move_to_end(key)
            return self._subsets[key]
        ids = np.flatnonzero(mask)
        index = faiss.IndexFlatIP(self.n_features_)
        index.add(self._xb[ids])
        self._subsets[key] = (index, ids)
        if len(self._subsets) > _SUBSET_CACHE_SIZE:
            self._subsets.popitem(last=False)
        return index, ids

    def _search(
        self, vectors: np.ndarray, k: int, mask: np.ndarray | None, selector: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        self._set_threads(len(vectors))
        index: Any = self.index_
        ids: np.ndarray | None = None
        params = None
        if mask is not None:
            mask = self._mask(mask)
            bits = np.packbits(mask, bitorder="little")  # bit i of the bitmap = row i
            if selector:  # one-off exclusions: filter inside the scan of the full index
                sel = faiss.IDSelectorBitmap(bits)  # type: ignore[call-arg, arg-type]
                params = faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]
            elif not mask.all():
                index, ids = self._subset(mask, bits)
        k_search = min(k, index.ntotal) if params is None else min(k, self.n_samples_)
        if k_search == 0:
            found = np.full((len(vectors), 0), -1, dtype=np.int64)
            sim = np.zeros((len(vectors), 0), dtype=np.float32)
        else:
            sim, found = index.search(vectors, k_search, params=params)
        if ids is not None:
            found = np.where(found >= 0, ids[np.maximum(found, 0)], -1)
        if k_search < k:
            pad = ((0, 0), (0, k - k_search))
            found = np.pad(found, pad, constant_values=-1)
            sim = np.pad(sim, pad, constant_values=np.nan)
        sim = sim.astype(np.float32, copy=False)
        sim[found < 0] = np.nan
        return found.astype(np.int64, copy=False), sim

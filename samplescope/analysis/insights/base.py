"""What an insight is, what finders read, and the helpers they share.

An :class:`Insight` is one finding about the dataset or the model, written for a
person: a kind, a severity, the samples involved, one sentence with the numbers
and the numbers themselves. An :class:`InsightFinder` turns an
:class:`InsightContext` (the per-sample table, the latent vectors and, when
available, a way to fetch pixel inputs) into insights through one verb,
``find(ctx)``.

Severity is in [0, 1] and comparable across kinds: it estimates how much the
finding matters for trusting or improving the model. Every finder maps its own
evidence onto it with :func:`saturate` (``x / (x + half)``: 0 at 0, 0.5 at
``half``, towards 1 for large ``x``), so a finding's severity grows with the
share of the model's errors (or of an evaluation subset) it explains:

=======================  ====================================================
kind                     severity
=======================  ====================================================
low_performance_cluster  saturate(excess errors in the cluster / all errors, 0.1)
                         * (1 - overall rate / cluster rate); likewise with the
                         loss when it is the loss that is high
overfitting              saturate(excess held-out loss / all held-out loss, 0.1)
                         * (1 - overall gap / cluster gap)
mislabel                 saturate(candidates / labelled samples, 0.01)
                         * mean score of the listed candidates
duplicate                0.5 * saturate(duplicated share of the subset, 0.02)
leakage                  0.1 + 0.9 * saturate(leaked share of the held-out subset, 0.01)
outlier                  saturate((flagged - (1 - quantile) * samples) / samples, 0.005)
                         * (0.3 + 0.7 * outlier error rate)
metadata_failure         |Spearman rho| * (1 - best bin rate / worst bin rate)
                         * saturate(excess errors in the worst bin / all errors, 0.2);
                         for a category: saturate(excess share, 0.1) * (1 - 1 / ratio)
=======================  ====================================================
"""

from __future__ import annotations

import inspect
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from samplescope.errors import SamplescopeError

__all__ = [
    "Insight",
    "InsightContext",
    "InsightFinder",
    "InsightKind",
    "nearest_neighbors",
    "saturate",
    "to_json",
]

logger = logging.getLogger(__name__)

InsightKind = Literal[
    "low_performance_cluster",
    "mislabel",
    "duplicate",
    "leakage",
    "outlier",
    "metadata_failure",
    "overfitting",
]
KINDS: tuple[str, ...] = get_args(InsightKind)

REQUIRED_COLUMNS = ("sample_id", "subset", "label", "prediction", "loss", "correct")

# Above this many query x reference pairs a neighbour search goes approximate
# (IVF): an exact all-pairs search over 70,000 x 60,000 latent vectors costs
# ~20 CPU seconds, the IVF one ~3 with 94% recall of the true 10-NN.
EXACT_SEARCH_PAIRS = 1e8


# --------------------------------------------------------------------------- insight


@dataclass(frozen=True)
class Insight:
    """One finding, ready to show on a card.

    ``sample_ids`` are ``sample_id`` values (not row positions), most relevant
    first. ``details`` holds the numbers behind ``text``; :meth:`to_dict` makes
    everything JSON-serialisable.
    """

    kind: InsightKind
    severity: float
    sample_ids: list[int]
    text: str
    title: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SamplescopeError(f"Insight kind {self.kind!r} is not one of {', '.join(KINDS)}.")
        severity = float(self.severity)
        if not 0.0 <= severity <= 1.0:
            raise SamplescopeError(
                f"Insight severity {severity!r} (kind {self.kind}) is outside [0, 1]; "
                "map the finder's evidence with saturate()."
            )
        if not self.text.strip():
            raise SamplescopeError(f"Insight of kind {self.kind} has empty text.")
        object.__setattr__(self, "severity", severity)
        object.__setattr__(self, "sample_ids", [int(s) for s in self.sample_ids])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict: kind, severity, title, text, sample_ids, details."""
        return {
            "kind": self.kind,
            "severity": round(self.severity, 6),
            "title": self.title,
            "text": self.text,
            "sample_ids": list(self.sample_ids),
            "details": to_json(self.details),
        }


def to_json(value: Any) -> Any:
    """``value`` with numpy scalars/arrays made plain, dict keys made str, NaN made None."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_json(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def saturate(x: float, half: float) -> float:
    """Map ``x >= 0`` into [0, 1): 0 at 0, 0.5 at ``half``, approaching 1 as x grows."""
    x = max(0.0, float(x))
    return x / (x + half) if x > 0 else 0.0


# --------------------------------------------------------------------------- context


@dataclass
class InsightContext:
    """Everything finders read, aligned row for row.

    Parameters
    ----------
    samples:
        One row per sample with columns ``sample_id`` (unique int), ``subset``,
        ``label`` (-1 when unlabelled), ``prediction``, ``loss``, ``correct``,
        optionally ``confidence``, ``margin``, ``prob_0 .. prob_{C-1}`` and the
        metadata columns.
    latent:
        (N, D) latent vectors; row i belongs to ``samples`` row i.
    inputs:
        ``inputs(rows) -> (B, P) float32`` flattened model inputs for the given
        row positions, or None when pixels are not available.
    class_names:
        Display names by class index; defaults to ``"0" .. "C-1"``.
    metadata_columns:
        Which columns of ``samples`` are user metadata.
    random_state:
        Seed for everything random (clustering, IVF training, subsampling).
    train_subset:
        Name of the training subset; every other subset counts as held out.
    """

    samples: pd.DataFrame
    latent: np.ndarray
    inputs: Callable[[np.ndarray], np.ndarray] | None = None
    class_names: list[str] = field(default_factory=list)
    metadata_columns: list[str] = field(default_factory=list)
    random_state: int = 0
    train_subset: str = "train"
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.samples, pd.DataFrame):
            raise SamplescopeError(
                "InsightContext.samples must be a pandas DataFrame, got "
                f"{type(self.samples).__name__}."
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in self.samples.columns]
        if missing:
            raise SamplescopeError(
                f"InsightContext.samples lacks column(s) {', '.join(missing)}; "
                f"it needs {', '.join(REQUIRED_COLUMNS)}."
            )
        latent = np.asarray(self.latent)
        if latent.ndim != 2:
            raise SamplescopeError(
                f"InsightContext.latent must be 2-D (N, D), got shape {latent.shape}."
            )
        if latent.shape[0] != len(self.samples):
            raise SamplescopeError(
                f"InsightContext.latent has {latent.shape[0]} rows but samples has "
                f"{len(self.samples)} rows; they must be aligned row for row."
            )
        self.latent = np.ascontiguousarray(latent, dtype=np.float32)
        ids = self.samples["sample_id"]
        if ids.duplicated().any():
            dup = ids[ids.duplicated()].iloc[0]
            raise SamplescopeError(
                f"InsightContext.samples has sample_id {dup} more than once; ids must be unique."
            )
        unknown = [c for c in self.metadata_columns if c not in self.samples.columns]
        if unknown:
            raise SamplescopeError(
                f"metadata column(s) {', '.join(map(str, unknown))} are not columns of "
                "InsightContext.samples."
            )
        if not self.class_names:
            n = max(
                len(self.prob_columns),
                int(np.max(self.samples["label"].to_numpy(), initial=-1)) + 1,
                int(np.max(self.samples["prediction"].to_numpy(), initial=-1)) + 1,
            )
            self.class_names = [str(i) for i in range(n)]

    # -- columns as arrays (cached; finders never mutate them) -----------------

    def _get(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def n_rows(self) -> int:
        return len(self.samples)

    @property
    def sample_ids(self) -> np.ndarray:
        return self._get("sample_ids", lambda: self.samples["sample_id"].to_numpy(np.int64))

    @property
    def subsets(self) -> np.ndarray:
        return self._get("subsets", lambda: self.samples["subset"].astype(str).to_numpy())

    @property
    def labels(self) -> np.ndarray:
        return self._get("labels", lambda: self.samples["label"].to_numpy(np.int64))

    @property
    def predictions(self) -> np.ndarray:
        return self._get("predictions", lambda: self.samples["prediction"].to_numpy(np.int64))

    @property
    def losses(self) -> np.ndarray:
        return self._get("losses", lambda: self.samples["loss"].to_numpy(np.float64))

    @property
    def labelled(self) -> np.ndarray:
        """(N,) bool: rows with a label; error and loss statistics use only these."""
        return self._get("labelled", lambda: self.labels >= 0)

    @property
    def errors(self) -> np.ndarray:
        """(N,) bool: labelled rows the model got wrong."""
        return self._get("errors", lambda: self.labelled & ~self.samples["correct"].to_numpy(bool))

    @property
    def train_mask(self) -> np.ndarray:
        return self._get("train_mask", lambda: self.subsets == self.train_subset)

    @property
    def reference_mask(self) -> np.ndarray:
        """Rows neighbour statistics are measured against: the training subset, else all rows."""
        return self._get(
            "reference_mask",
            lambda: self.train_mask if self.train_mask.any() else np.ones(self.n_rows, bool),
        )

    @property
    def prob_columns(self) -> list[str]:
        """``prob_0 .. prob_{C-1}`` in class order (empty when absent)."""
        cols = [
            c
            for c in self.samples.columns
            if isinstance(c, str) and c.startswith("prob_") and c[5:].isdigit()
        ]
        return sorted(cols, key=lambda c: int(c[5:]))

    @property
    def probabilities(self) -> np.ndarray | None:
        """(N, C) float64 class probabilities, or None without ``prob_*`` columns."""
        cols = self.prob_columns
        if not cols:
            return None
        return self._get("probabilities", lambda: self.samples[cols].to_numpy(np.float64))

    @property
    def unit_latent(self) -> np.ndarray:
        """(N, D) float32 latent rows scaled to unit length (zero rows stay zero)."""
        return self._get("unit_latent", lambda: _unit_rows(self.latent))

    def class_name(self, index: int) -> str:
        index = int(index)
        return self.class_names[index] if 0 <= index < len(self.class_names) else str(index)

    def reference_neighbors(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each row's ``k`` nearest reference rows by cosine, never itself.

        Returns ``(distances, rows)``, both (N, k): cosine distance (1 - cos) in
        increasing order and row positions into ``samples``. Computed once and
        shared by every finder (the largest ``k`` asked so far is kept).
        """
        cached = self._cache.get("reference_neighbors")
        if cached is None or cached[0].shape[1] < k:
            ref_rows = np.flatnonzero(self.reference_mask)
            n_ref = len(ref_rows)
            if n_ref < 2:
                raise SamplescopeError(
                    f"need at least 2 reference ({self.train_subset!r}) rows for neighbour "
                    f"statistics, got {n_ref}."
                )
            k_eff = min(max(k, 10), n_ref - 1)
            self_pos = np.full(self.n_rows, -1, np.int64)
            self_pos[ref_rows] = np.arange(n_ref)
            dist, pos = nearest_neighbors(
                self.unit_latent[ref_rows],
                self.unit_latent,
                k_eff,
                metric="cosine",
                self_positions=self_pos,
                random_state=self.random_state,
            )
            rows = np.where(pos >= 0, ref_rows[np.maximum(pos, 0)], -1)
            cached = (dist, rows)
            self._cache["reference_neighbors"] = cached
        return cached[0][:, :k], cached[1][:, :k]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


# --------------------------------------------------------------------------- neighbours


def nearest_neighbors(
    reference: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    metric: Literal["cosine", "l2"] = "cosine",
    self_positions: np.ndarray | None = None,
    exact: bool | None = None,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest ``reference`` rows of each query row.

    ``metric="cosine"`` expects unit-length rows and returns cosine distances
    (1 - cos); ``"l2"`` returns Euclidean distances. ``self_positions[q]`` is
    the reference position of query ``q`` itself (or -1), never returned.
    ``exact=None`` searches exhaustively up to :data:`EXACT_SEARCH_PAIRS` query x
    reference pairs and with a seeded IVF index (90-95% recall) beyond.
    Returns ``(distances, positions)`` (Q, k), nearest first; missing answers are
    position -1 with distance inf.
    """
    import faiss

    reference = np.ascontiguousarray(reference, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n_ref, dim = reference.shape
    extra = 1 if self_positions is not None else 0
    k_search = min(k + extra, n_ref)
    if exact is None:
        exact = len(queries) * n_ref <= EXACT_SEARCH_PAIRS
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    index: Any  # faiss.IndexFlat or faiss.IndexIVFFlat
    if exact:
        index = faiss.IndexFlat(dim, faiss_metric)
    else:
        # ~2 sqrt(n) lists, 4 probed: on an MLP's 128-d MNIST latent (60k reference
        # rows) this finds 94% of the exact 10-NN for a quarter of the exact cost
        nlist = int(np.clip(2 * math.sqrt(n_ref), 16, 1024))
        nlist = max(1, min(nlist, n_ref // 40))
        index = faiss.IndexIVFFlat(faiss.IndexFlat(dim, faiss_metric), dim, nlist, faiss_metric)
        index.cp.seed = int(random_state)
        index.cp.min_points_per_centroid = 1  # no faiss warning on small training sets
        index.cp.niter = 10  # coarse cells need not be good clusters, only a partition
        n_train = min(n_ref, 40 * nlist)
        rng = np.random.default_rng(random_state)
        train_rows = np.sort(rng.choice(n_ref, n_train, replace=False))
        index.train(reference[train_rows])
        index.nprobe = max(4, nlist // 100)
    index.add(reference)
    scores, pos = index.search(queries, k_search)
    if self_positions is not None:
        pos, scores = _drop_self(pos, scores, np.asarray(self_positions), k)
    if metric == "cosine":
        dist = (1.0 - scores).astype(np.float32)
    else:
        dist = np.sqrt(np.maximum(scores, 0.0)).astype(np.float32)
    dist[pos < 0] = np.inf
    np.maximum(dist, 0.0, out=dist)
    if pos.shape[1] < k:  # fewer reference rows than k: pad
        pad = k - pos.shape[1]
        pos = np.pad(pos, ((0, 0), (0, pad)), constant_values=-1)
        dist = np.pad(dist, ((0, 0), (0, pad)), constant_values=np.inf)
    return dist, pos


def _drop_self(
    pos: np.ndarray, scores: np.ndarray, self_positions: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own position (or, when absent, its last answer)."""
    is_self = (pos == self_positions[:, None]) & (self_positions[:, None] >= 0)
    # keep everything that is not self; rows without self lose their last column
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True
    keep = ~is_self
    width = pos.shape[1] - 1
    pos = pos[keep].reshape(len(pos), width)[:, :k]
    scores = scores[keep].reshape(len(scores), width)[:, :k]
    return pos, scores


# --------------------------------------------------------------------------- finder


class InsightFinder:
    """Base class: ``__init__`` stores parameters, ``find(ctx)`` does the work.

    Subclasses set ``kinds`` (the insight kinds they may emit) and implement
    :meth:`find`; learned per-sample state (``scores_``, ``cluster_labels_``)
    ends in an underscore and is aligned with ``ctx.samples`` rows. A finder
    with ``scores_`` names them ``f"{column_prefix}_score"`` when they are stored.
    """

    kinds: tuple[str, ...] = ()
    column_prefix: str = ""

    def find(self, ctx: InsightContext) -> list[Insight]:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as scikit-learn's ``get_params(deep=False)``."""
        names = [
            p.name
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def seed_for(finder_state: int | None, ctx: InsightContext) -> int:
    """The finder's own ``random_state`` when set, else the context's."""
    return int(ctx.random_state if finder_state is None else finder_state)


def ordered_ids(ctx: InsightContext, rows: np.ndarray, limit: int) -> list[int]:
    """Sample ids of ``rows``, errors first, then by loss descending, at most ``limit``."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return []
    loss = np.nan_to_num(ctx.losses[rows], nan=-np.inf)
    order = np.lexsort((-loss, ~ctx.errors[rows]))
    return ctx.sample_ids[rows[order[:limit]]].tolist()


def one_sided_p(test: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """A scipy test's p-value, 1.0 when it is undefined (constant or tiny samples)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(test(*args, **kwargs).pvalue)
    return p if math.isfinite(p) else 1.0


def pct(x: float) -> str:
    """0.1823 -> '18.2%'; small values keep two significant digits."""
    x *= 100
    if x != 0 and abs(x) < 0.1:
        return f"{x:.2g}%"
    return f"{x:.1f}%"

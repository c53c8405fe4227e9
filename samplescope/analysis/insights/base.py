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
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from samplescope.errors import SamplescopeError

__all__ = [
    "Insight",
    "InsightContext",
    "InsightFinder",
    "InsightKind",
    "error_severity",
    "saturate",
    "severity_band",
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

_REFERENCE_BLOCK = 262_144  # rows whose reference neighbours are read from the graph at a time

REQUIRED_COLUMNS = ("sample_id", "subset", "label", "prediction", "loss", "correct")

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


#: The common severity scale: an insight's severity is ``saturate(E / errors, SEVERITY_HALF)``
#: where E is the expected number of errors it accounts for (docs/concepts.md).
SEVERITY_HALF = 0.1
#: Severity bands, as the page and the report name them: high accounts for at least a tenth
#: of the errors (saturate(0.1, 0.1) = 1/2), medium for at least a twentieth (1/3).
SEVERITY_BANDS = (("high", 0.5), ("medium", 1 / 3), ("low", 0.0))


def error_severity(accounted: float, total_errors: float) -> float:
    """The common scale: ``saturate(accounted / total_errors, 0.1)``.

    ``accounted``: the expected number of the model's errors the insight accounts for
    (errors above what the samples' classes predict, wrong labels, errors hidden by
    leaked copies); ``total_errors``: the errors over the labelled samples. An insight
    explaining a tenth of the errors has severity 0.5.
    """
    return saturate(accounted / max(float(total_errors), 1.0), SEVERITY_HALF)


def severity_band(severity: float) -> str:
    return next(name for name, low in SEVERITY_BANDS if severity >= low)


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
    neighbors:
        The :class:`~samplescope.analysis.neighbors.NeighborIndex` already fitted
        on ``latent`` (``analyze`` builds it once and shares it with the map);
        None fits one on first use. Finders read its kNN graph, never search N x N.
    pixel_features:
        A :class:`~samplescope.analysis.sketch.PixelFeatures` sketch of every input,
        made in the inference pass (``analyze`` does); the duplicate finder searches it
        and fetches through ``inputs`` only the candidate pairs' inputs. None: the
        finder sketches the inputs through ``inputs`` itself.
    aligned_features:
        An :class:`~samplescope.analysis.insights.aligned.AlignedFeatures` sketch of every
        input after alignment, made in the same pass (``analyze`` does, for image inputs);
        the duplicate finder searches it for shifted copies. None: the finder aligns and
        sketches the inputs through ``inputs`` itself.
    metadata_kinds:
        ``{column: kind}`` (``number``, ``category``, ``ordinal``, ``class``), declared
        by the integration; columns not named are inferred (:mod:`.kinds`).
    label_functions:
        Metadata columns that are functions of the label (they never explain
        anything); None detects them (:func:`.kinds.label_functions`).
    task:
        The run's task name; class-conditioned explanations and confusion pairs are
        made for ``classification`` only.
    input_shape:
        The shape of one model input (e.g. ``(1, 28, 28)``); the duplicate finder
        compares images up to small shifts when it is an image shape.
    scratch:
        A folder that outlives the context (``analyze``'s scratch folder): the per-row
        arrays kept for every finder (the reference neighbours) are memory-mapped files
        there, not memory of the process. None: they are held in memory.
    """

    samples: pd.DataFrame
    latent: np.ndarray
    inputs: Callable[[np.ndarray], np.ndarray] | None = None
    class_names: list[str] = field(default_factory=list)
    metadata_columns: list[str] = field(default_factory=list)
    random_state: int = 0
    train_subset: str = "train"
    neighbors: Any = None
    pixel_features: Any = None
    aligned_features: Any = None
    metadata_kinds: dict[str, str] = field(default_factory=dict)
    label_functions: list[str] | None = None
    task: str = "classification"
    input_shape: tuple[int, ...] | None = None
    scratch: str | Path | None = None
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
        if self.neighbors is not None and getattr(self.neighbors, "n_samples_", None) != len(latent):
            raise SamplescopeError(
                f"InsightContext.neighbors indexes {getattr(self.neighbors, 'n_samples_', 0)} rows but "
                f"latent has {len(latent)}; fit the NeighborIndex on this latent."
            )
        if self.pixel_features is not None and len(self.pixel_features) != len(latent):
            raise SamplescopeError(
                f"InsightContext.pixel_features has {len(self.pixel_features)} rows but latent has "
                f"{len(latent)}; sketch the same samples."
            )
        if self.aligned_features is not None and len(self.aligned_features) != len(latent):
            raise SamplescopeError(
                f"InsightContext.aligned_features has {len(self.aligned_features)} rows but latent has "
                f"{len(latent)}; sketch the same samples."
            )
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
        from samplescope.analysis.insights.kinds import label_functions, resolve_kinds

        self.metadata_kinds = resolve_kinds(self.samples, self.metadata_columns, self.metadata_kinds)
        if self.label_functions is None:
            self.label_functions = label_functions(
                self.samples, self.metadata_columns, self.samples["label"].to_numpy()
            ) if self.is_classification else []
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
        def make() -> np.ndarray:  # (N,) object: a few str objects shared by every row, not one a row
            codes, names = pd.factorize(self.samples["subset"].astype(str))
            return np.asarray(list(names), dtype=object)[codes]

        return self._get("subsets", make)

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

    def probability_rows(self, rows: slice | np.ndarray) -> np.ndarray | None:
        """(len(rows), C) float64 class probabilities of these rows only (None without
        ``prob_*`` columns): finders read them block by block, not as one (N, C) float64 copy
        (80 bytes a sample); the values equal the matching rows of :attr:`probabilities`."""
        cols = self.prob_columns
        if not cols:
            return None
        cached = self._cache.get("probabilities")
        if cached is not None:
            return cached[rows]
        return self.samples.iloc[rows][cols].to_numpy(np.float64)

    def probability_column(self, k: int) -> np.ndarray:
        """(N,) float64 probabilities of class ``k`` (``prob_{k}``): one column, not the (N, C) table."""
        cached = self._cache.get("probabilities")
        if cached is not None:
            return cached[:, k]
        return self.samples[self.prob_columns[k]].to_numpy(np.float64)

    @property
    def unit_latent(self) -> np.ndarray:
        """(N, D) float32 latent rows scaled to unit length (zero rows stay zero): a full copy,
        kept once made; the built-in finders ask :meth:`unit_rows` for the rows they need."""
        return self._get("unit_latent", lambda: _unit_rows(self.latent))

    def unit_rows(self, rows: np.ndarray | slice) -> np.ndarray:
        """(len(rows), D) float32 unit-length latent rows, computed for these rows only."""
        cached = self._cache.get("unit_latent")
        return cached[rows] if cached is not None else _unit_rows(np.asarray(self.latent[rows]))

    @property
    def is_classification(self) -> bool:
        return self.task == "classification"

    @property
    def explaining_columns(self) -> list[str]:
        """Metadata columns that may explain a finding: every one but the label's functions."""
        skip = set(self.label_functions or [])
        return [c for c in self.metadata_columns if c not in skip]

    def kind_of(self, column: str) -> str:
        return self.metadata_kinds.get(column, "number")

    @property
    def expected_errors(self) -> np.ndarray:
        """(N,) each labelled row's chance of an error given only its class: its class's
        error rate (classification), else the overall rate; 0 for unlabelled rows.
        Slices are judged against the sum of this, so a slice of hard classes is not news."""

        def make() -> np.ndarray:
            lab, err = self.labelled, self.errors
            out = np.zeros(self.n_rows)
            if not lab.any():
                return out
            if not self.is_classification:
                out[lab] = err[lab].mean()
                return out
            y = self.labels[lab]
            rate = np.bincount(y, weights=err[lab]) / np.maximum(np.bincount(y), 1)
            out[lab] = rate[y]
            return out

        return self._get("expected_errors", make)

    def value_name(self, column: str, value: Any) -> str:
        """A value as a person reads it: a class column's index by its class name."""
        if self.kind_of(column) == "class":
            try:
                return self.class_name(int(float(value)))
            except (TypeError, ValueError):
                return str(value)
        if isinstance(value, (float, np.floating)):
            return f"{float(value):.3g}"
        return str(value)

    def class_name(self, index: int) -> str:
        index = int(index)
        return self.class_names[index] if 0 <= index < len(self.class_names) else str(index)

    @property
    def neighbor_index(self) -> Any:
        """The shared :class:`~samplescope.analysis.neighbors.NeighborIndex` over the latent rows."""
        if self.neighbors is None:
            from samplescope.analysis.neighbors import NeighborIndex

            self.neighbors = NeighborIndex(random_state=self.random_state).fit(self.latent)
        return self.neighbors

    def latent_neighbors(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each row's ``k`` nearest rows of any subset by cosine, never itself: the shared graph.

        Returns ``(distances, rows)``, both (N, k), nearest first.
        """
        rows, dist = self.neighbor_index.kneighbors(k=min(k, self.n_rows - 1))
        return dist, rows

    def reference_neighbors(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each row's ``k`` nearest reference rows by cosine, never itself.

        Returns ``(distances, rows)``, both (N, k): cosine distance (1 - cos) in
        increasing order and row positions into ``samples``. Read from the
        shared kNN graph (rows whose graph holds fewer than ``k`` reference rows
        are searched), once for every finder (the largest ``k`` asked is kept).
        """
        cached = self._cache.get("reference_neighbors")
        if cached is None or cached[0].shape[1] < k:
            n_ref = int(self.reference_mask.sum())
            if n_ref < 2:
                raise SamplescopeError(
                    f"need at least 2 reference ({self.train_subset!r}) rows for neighbour "
                    f"statistics, got {n_ref}."
                )
            k_eff = min(max(k, 10), n_ref - 1)
            mask = None if n_ref == self.n_rows else self.reference_mask
            n = self.n_rows
            # kept for every finder: int32 rows halve it; with a scratch folder both are files
            dist = self._row_array(f"reference-distances-{k_eff}", (n, k_eff), np.float32)
            rows = self._row_array(f"reference-rows-{k_eff}", (n, k_eff), np.int32 if n < 2**31 else np.int64)
            for start in range(0, n, _REFERENCE_BLOCK):  # bounded (block, k) int64 temporaries
                at = slice(start, min(n, start + _REFERENCE_BLOCK))
                rows[at], dist[at] = self.neighbor_index.kneighbors(np.arange(at.start, at.stop), k=k_eff, mask=mask)
            cached = (dist, rows)
            self._cache["reference_neighbors"] = cached
        return cached[0][:, :k], cached[1][:, :k]


    def scratch_folder(self, name: str) -> Path | None:
        """A new, empty subfolder ``name`` of ``scratch`` (a finder's memory-mapped files), or None."""
        if self.scratch is None:
            return None
        import shutil

        folder = Path(self.scratch) / name
        shutil.rmtree(folder, ignore_errors=True)  # a finder run twice on one context starts afresh
        folder.mkdir(parents=True)
        return folder

    def _row_array(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A new per-row array: a memory-mapped file in ``scratch`` when there is one, else memory."""
        if self.scratch is None:
            return np.empty(shape, dtype)
        from samplescope.store.folder import mapped_array

        return mapped_array(Path(self.scratch) / f"{name}.npy", shape, dtype)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


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

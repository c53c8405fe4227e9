"""What the server holds for one run, and the reads the routes share.

Routes never open files or database connections: every read goes through the
run's Python API (``samplescope.run.Run``); this module only caches what the
API returns (the samples table, encoded map payloads, heatmaps) and keeps the
heatmaps one at a time: attribution methods hook into the shared model, so two
at once would mix their activations.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import pandas as pd

from samplescope.errors import NotFoundError, ParameterError, RunError
from samplescope.server import encoding, limits
from samplescope.server.encoding import ColumnKind
from samplescope.server.heavy import Lane
from samplescope.server.settings import Settings

if TYPE_CHECKING:
    from samplescope.run import Run

log = logging.getLogger(__name__)

T = TypeVar("T")
HeatmapMethod = Literal["gradcam", "integrated_gradients", "saliency"]

#: Integer columns that name a class or a group, not a quantity.
CLASS_COLUMNS = ("label", "prediction", "nearest_centroid")
GROUP_COLUMNS = ("cluster", "subset")
#: Columns every table row carries.
ROW_COLUMNS = (
    "sample_id", "subset", "index", "label", "prediction", "loss", "confidence", "margin",
    "correct",
)  # fmt: skip
#: Columns the map payload always carries.
MAP_COLUMNS = ("label", "prediction", "loss", "subset", "correct")


class ServerState:
    """One run, its samples table in memory, and caches keyed by the request."""

    def __init__(self, run: Run, settings: Settings) -> None:
        self.run = run
        self.settings = settings
        # One heatmap at a time: attribution hooks into the shared model.
        self._heatmap_lock = threading.Lock()
        self._neighbor_lock = threading.Lock()
        self._neighbors_ready = False
        self._cache_lock = threading.Lock()
        self.frame: pd.DataFrame = run.samples()
        self.classes: list[str] = [str(c) for c in run.classes]
        self.kinds: dict[str, ColumnKind] = {
            c: column_kind(c, self.frame[c]) for c in self.frame.columns
        }
        ids = self.frame["sample_id"].to_numpy()
        self.ids_are_rows = bool(np.array_equal(ids, np.arange(len(ids))))
        self.id_index = pd.Index(ids)
        self.row_columns = [c for c in ROW_COLUMNS if c in self.frame.columns]
        self.subsets: list[str] = [str(s) for s in pd.unique(self.frame["subset"])]
        self.tag = _run_tag(run)
        self._map_cache: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
        self._heatmaps: OrderedDict[tuple[int, int, str], np.ndarray] = OrderedDict()
        # heavy work in bounded lanes; heatmaps have their own (they go one at a time anyway)
        s = settings
        self.heatmap_lane = Lane(
            "heatmap", workers=s.heavy_workers, queue=s.heavy_queue, timeout=s.heavy_timeout
        )
        self.compute_lane = Lane(
            "compute", workers=s.heavy_workers, queue=s.heavy_queue, timeout=s.heavy_timeout
        )

    # --- calls into the run -----------------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a method of the run that reads tables (safe from many threads)."""
        return fn(*args, **kwargs)

    def call_locked(
        self, lock: threading.Lock, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        with lock:
            return fn(*args, **kwargs)

    def prewarm(self, delay: float = 0.0) -> None:
        """Load the heavy libraries behind heatmaps and similars before anyone asks.

        Waits ``delay`` seconds first, so the page's first load does not compete
        with importing torch for the interpreter.
        """
        time.sleep(delay)
        if len(self.frame) == 0:
            return
        import torch

        # One thread per request: concurrent heatmap requests on few cores are faster
        # (and their latency steadier) than each one spreading over every core.
        torch.set_num_threads(1)
        first = int(self.frame["sample_id"].iloc[0])
        try:
            self.similar([first], k=1)
            if self.run.trusted:  # an untrusted run's code is never imported, not even to warm up
                self.image(first)
                self.heatmap(first, None, "gradcam")
        except Exception:  # a failure here shows again, with its message, on the real request
            log.debug("prewarm failed", exc_info=True)
        else:
            log.info("heatmaps and similars are warm")

    # --- samples ----------------------------------------------------------------------------

    def rows_of(self, sample_ids: Sequence[int]) -> np.ndarray:
        """Row positions of ``sample_ids`` in :attr:`frame`; NotFoundError names unknown ids."""
        out_of_range = [i for i in sample_ids if not 0 <= int(i) <= limits.MAX_SAMPLE_ID]
        if out_of_range:  # the routes check this first; a 422, not numpy's OverflowError
            raise ParameterError(
                f"sample id {out_of_range[0]} is not a sample id; ids are integers "
                f"from 0 to {limits.MAX_SAMPLE_ID}"
            )
        ids = np.asarray(sample_ids, dtype=np.int64)
        pos = self.id_index.get_indexer(ids)
        if (pos < 0).any():
            bad = ids[pos < 0][:5].tolist()
            raise NotFoundError(
                f"no sample with id {', '.join(map(str, bad))} in run {self.run.name!r}; "
                f"sample ids run from {int(self.id_index.min())} to {int(self.id_index.max())}"
            )
        return pos

    def row(self, sample_id: int) -> pd.Series:
        return self.frame.iloc[int(self.rows_of([sample_id])[0])]

    def check_subset(self, subset: str | None) -> str | None:
        if subset in (None, "", "all"):
            return None
        if subset not in self.subsets:
            raise ParameterError(
                f"subset {subset!r} is not in run {self.run.name!r}; "
                f"choose one of {', '.join(self.subsets)} (or leave it out for all)"
            )
        return subset

    def check_columns(self, names: Sequence[str]) -> list[str]:
        bad = [n for n in names if n not in self.kinds]
        if bad:
            raise ParameterError(
                f"no column {', '.join(map(repr, bad))} in run {self.run.name!r}; "
                "GET /api/run lists the columns"
            )
        return list(names)

    def aggregate_x_columns(self) -> list[str]:
        """Columns /api/aggregate takes as ``x``: numeric ones (binned) and the others with at
        most ``MAX_BINS`` values (grouped by value)."""
        return [
            c for c, k in self.kinds.items()
            if k == "numeric" or self.distinct_counts[c] <= limits.MAX_BINS
        ]  # fmt: skip

    def aggregate_by_columns(self) -> list[str]:
        """Columns /api/aggregate splits by: those with at most ``MAX_GROUPS`` values."""
        return [c for c in self.kinds if self.distinct_counts[c] <= limits.MAX_GROUPS]

    @functools.cached_property
    def distinct_counts(self) -> dict[str, int]:
        """Distinct values per column (NaN counts as one), for the aggregate limits."""
        return {c: int(self.frame[c].nunique(dropna=False)) for c in self.frame.columns}

    def aggregate(
        self, x: str, y: str, by: str | None, subset: str | None, bins: int
    ) -> pd.DataFrame:
        """``analysis.metrics.aggregate`` over the table in memory, within the server's limits."""
        from samplescope.analysis.metrics import aggregate

        frame = self.frame if subset is None else self.frame[self.frame["subset"] == subset]
        return aggregate(
            frame, x, y=y, by=by, bins=bins,
            max_bins=limits.MAX_BINS, max_groups=limits.MAX_GROUPS, max_values=limits.MAX_BINS,
        )  # fmt: skip

    def class_index(self, value: str | int) -> int:
        """A class given by index or by name."""
        text = str(value)
        if text in self.classes:
            return self.classes.index(text)
        try:
            index = int(text)
        except ValueError:
            index = -1
        if not 0 <= index < len(self.classes):
            raise ParameterError(
                f"class {value!r} is neither a class name nor an index below {len(self.classes)}; "
                f"classes: {', '.join(self.classes)}"
            )
        return index

    def records(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Rows as JSON-ready dicts (NaN -> None) with class names beside class indices."""
        out = frame.copy()
        for col in CLASS_COLUMNS:
            if col in out.columns:
                out[f"{col}_name"] = self.class_names(out[col])
        return json.loads(out.to_json(orient="records", double_precision=6))

    def class_names(self, values: pd.Series) -> list[str | None]:
        names = self.classes
        return [names[int(v)] if pd.notna(v) and 0 <= int(v) < len(names) else None for v in values]

    # --- the map ----------------------------------------------------------------------------

    def map_payload(self, color: str | None, columns: Sequence[str]) -> bytes:
        key = (color or "", *sorted(set(columns)))
        with self._cache_lock:
            if key in self._map_cache:
                self._map_cache.move_to_end(key)
                return self._map_cache[key]
        payload = self._encode_map(color, columns)
        with self._cache_lock:
            self._map_cache[key] = payload
            while len(self._map_cache) > 32:
                self._map_cache.popitem(last=False)
        return payload

    def _encode_map(self, color: str | None, columns: Sequence[str]) -> bytes:
        f = self.frame
        if "map_x" not in f.columns or "map_y" not in f.columns:
            raise RunError(
                f"run {self.run.name!r} has no 2-D map (map_x, map_y); "
                f"analyse it again with `samplescope analyze {self.run.path}`"
            )
        arrays: dict[str, tuple[np.ndarray, dict[str, Any]]] = {
            "x": (f["map_x"].to_numpy(dtype="<f4"), {"kind": "numeric", "dtype": "float32"}),
            "y": (f["map_y"].to_numpy(dtype="<f4"), {"kind": "numeric", "dtype": "float32"}),
        }
        if not self.ids_are_rows:
            arrays["sample_id"] = (
                f["sample_id"].to_numpy(dtype="<u4"),
                {"kind": "numeric", "dtype": "uint32"},
            )
        wanted = [c for c in MAP_COLUMNS if c in f.columns]
        wanted += [c for c in [color, *columns] if c and c not in wanted]
        for name in wanted:
            arrays[name] = self.encode_column(name)
        meta = {
            "ids": "rows" if self.ids_are_rows else "sample_id",
            "color": color,
            "classes": self.classes,
        }
        return encoding.pack_columns(arrays, len(f), meta)

    def encode_column(self, name: str) -> tuple[np.ndarray, dict[str, Any]]:
        kind = self.kinds[name]
        cats = self.classes if name in CLASS_COLUMNS else None
        if name == "subset":
            cats = self.subsets
            codes = pd.Series(pd.Categorical(self.frame["subset"], categories=cats).codes)
            return encoding.encode_column(codes.where(codes >= 0), "categorical", cats)
        return encoding.encode_column(self.frame[name], kind, cats)

    # --- heatmaps and neighbours ------------------------------------------------------------

    def cached_heatmap(self, sample_id: int, target: int, method: str) -> np.ndarray | None:
        """The heatmap when this server already computed it, else None (cheap, no lane)."""
        key = (int(sample_id), int(target), method)
        with self._cache_lock:
            if key in self._heatmaps:
                self._heatmaps.move_to_end(key)
                return self._heatmaps[key]
        return None

    def heatmap(self, sample_id: int, target: int | None, method: HeatmapMethod) -> np.ndarray:
        row = self.row(sample_id)
        if target is None:
            target = int(row["prediction"])
        key = (int(sample_id), int(target), method)
        found = self.cached_heatmap(*key)
        if found is not None:
            return found
        h = np.asarray(
            self.call_locked(
                self._heatmap_lock, self.run.heatmap, int(sample_id), target, method=method
            ),
            np.float32,
        )
        with self._cache_lock:
            self._heatmaps[key] = h
            while len(self._heatmaps) > self.settings.heatmap_cache_size:
                self._heatmaps.popitem(last=False)
        return h

    def similar(self, sample_ids: Sequence[int], k: int, subset: str | None = None) -> pd.DataFrame:
        """The ``k`` nearest samples to one sample or a set, with their table rows."""
        self.rows_of(sample_ids)
        ids = [int(i) for i in sample_ids]
        if len(ids) == 1:
            found = self._neighbors(self.run.similar, ids[0], k=k, subset=subset)
        else:
            found = self._neighbors(self.run.similar_to_set, ids, k=k, subset=subset)
        rows = self.frame.iloc[self.rows_of(found["sample_id"].to_numpy())]
        rows = rows[[c for c in ROW_COLUMNS if c in rows.columns]].reset_index(drop=True)
        rows["similarity"] = found["similarity"].to_numpy(dtype=float)
        return rows

    def _neighbors(
        self, fn: Callable[..., pd.DataFrame], *args: Any, **kwargs: Any
    ) -> pd.DataFrame:
        """The first query builds the run's index, so it goes alone; later ones run side by side
        (searching a built index is safe from many threads)."""
        if self._neighbors_ready:
            return fn(*args, **kwargs)
        with self._neighbor_lock:
            found = fn(*args, **kwargs)
            self._neighbors_ready = True
            return found

    def image(self, sample_id: int) -> np.ndarray:
        self.rows_of([sample_id])
        return np.asarray(self.call(self.run.image, int(sample_id)))

    @functools.cached_property
    def image_shape(self) -> tuple[int, int]:
        first = int(self.frame["sample_id"].iloc[0])
        return tuple(self.image(first).shape[:2])  # type: ignore[return-value]


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into plain JSON types (NaN -> None)."""
    return json.loads(json.dumps(value, default=_json_default), parse_constant=lambda _: None)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray | pd.Series):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.DataFrame):
        return json.loads(value.to_json(orient="records"))
    if isinstance(value, Path):
        return str(value)
    return str(value)


def column_kind(name: str, values: pd.Series) -> ColumnKind:
    """How the page should treat a column: a quantity, a group or a yes/no."""
    if pd.api.types.is_bool_dtype(values):
        return "bool"
    if values.dtype == object:
        present = values.dropna()
        if len(present) and all(isinstance(v, bool | np.bool_) for v in present.head(1000)):
            return "bool"  # a yes/no column with gaps (e.g. correct on unlabeled samples)
    if name in CLASS_COLUMNS or name in GROUP_COLUMNS:
        return "categorical"
    if pd.api.types.is_numeric_dtype(values):
        return "numeric"
    return "categorical"


def load_run(
    path: str | Path, *, trust: bool = False, integration: str | None = None, device: str = "auto"
) -> Run:
    """Open a run folder for serving, or say clearly why it cannot be served.

    Nothing of the run's code runs unless it is built in, trusted or named (see samplescope.trust).
    """
    from samplescope.run import open_run

    path = Path(path)
    if not path.exists():
        raise RunError(
            f"no run folder at {path}; train and analyse one first "
            "(`samplescope train ...` then `samplescope analyze ...`)"
        )
    run = open_run(path, trust=trust, integration=integration, device=device)
    if device not in ("auto", "cpu"):  # a device that may be missing fails before listening
        run.device  # noqa: B018 - (resolving imports torch, which start-up otherwise avoids)
    check_servable(run)
    return run


def check_servable(run: Run) -> None:
    """Raise RunError unless the run has been analysed (the page needs the analysis)."""
    info = run.info or {}
    if not info.get("analysis"):
        raise RunError(
            f"run {run.name!r} at {run.path} is not analysed yet, so there is nothing to serve; "
            f"run `samplescope analyze {run.path}` first"
        )


def _run_tag(run: Run) -> str:
    """A short fingerprint of the run, for ETags (images never change within a run)."""
    text = json.dumps(run.info, sort_keys=True, default=str) + str(run.path)
    return hashlib.sha1(text.encode()).hexdigest()[:16]

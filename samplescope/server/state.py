"""What the server holds for one run, and the reads the routes share.

Routes never open files or database connections: every read goes through the run
(``samplescope.run.Run``) or the store's queries (``samplescope.store.serving``,
``samplescope.store.map_queries``). Nothing here holds the samples table: a page, a row,
a count or a selection is one DuckDB query. What is cached is small or bounded: the
columns and their kinds, per-subset counts, distinct counts, the categories of a column,
the encoded map columns (at most ``Settings.map_full_max`` rows each, or the overview
sample above that) and heatmaps. Heatmaps go one at a time: attribution methods hook
into the shared model, so two at once would mix their activations.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import pandas as pd

from samplescope.errors import NotFoundError, ParameterError, RunError
from samplescope.server import encoding, limits, records
from samplescope.server.coding import ColumnCoder
from samplescope.server.encoding import ColumnKind
from samplescope.server.heavy import Lane, ProcessLane, StateSpec
from samplescope.server.rowcache import RowCache
from samplescope.server.settings import Settings
from samplescope.server.viewports import HeldMap
from samplescope.store import layout, map_index, map_queries, serving

if TYPE_CHECKING:
    from samplescope.run import Run

log = logging.getLogger(__name__)

T = TypeVar("T")
HeatmapMethod = Literal["gradcam", "integrated_gradients", "saliency"]

#: Columns every table row carries.
ROW_COLUMNS = (
    "sample_id", "subset", "index", "label", "prediction", "loss", "confidence", "margin",
    "correct",
)  # fmt: skip
#: a viewport asked for while the compute worker reads a saved map index's columns waits this
#: long for them (server/viewports.py), then asks DuckDB
HELD_MAP_WAIT = 5.0


@dataclass(frozen=True)
class Lanes:
    """The heavy-work lanes; shared by every run a server serves in turn.

    Worker processes (``Settings.heavy_processes``, the default) or threads of the server's
    process; see samplescope/server/heavy.py for why processes."""

    heatmap: Lane
    compute: Lane

    @classmethod
    def of(cls, s: Settings) -> Lanes:
        return cls(lane_of(s, "heatmap"), lane_of(s, "compute"))

    def close(self) -> None:
        self.heatmap.close()
        self.compute.close()


class ServerState:
    """One run, the small facts about its table, and caches keyed by the request."""

    def __init__(self, run: Run, settings: Settings, lanes: Lanes | None = None) -> None:
        self.run = run
        self.settings = settings
        # One heatmap at a time: attribution hooks into the shared model.
        self._heatmap_lock = threading.Lock()
        self._neighbor_lock = threading.Lock()
        self._neighbors_ready = False
        self._cache_lock = threading.Lock()
        self._map_lock = threading.Lock()
        self._overview_lock = threading.Lock()
        self.n = len(run)
        self.task = run.task  # what label, prediction and correct mean (samplescope/tasks)
        summary = serving.subset_summary(run.db)
        self.subset_rows = summary.to_dict("records")
        #: how each column is coded for the page (server/coding.py)
        self.coder = ColumnCoder(
            run.db, run.classes, self.task, (run.info.get("analysis") or {}).get("metadata_kinds"),
            [str(s) for s in summary["subset"]],
        )
        self.columns: dict[str, str] = self.coder.columns  # name -> DuckDB type
        self.classes: list[str] = self.coder.classes
        self.subsets: list[str] = self.coder.subsets
        self.class_columns: tuple[str, ...] = self.coder.class_columns
        self.kinds: dict[str, ColumnKind] = self.coder.kinds
        self.categories = self.coder.categories
        self.numeric_range = self.coder.numeric_range
        self.encode_values = self.coder.encode
        self.row_columns = [c for c in ROW_COLUMNS if c in self.columns]
        self._plain_columns = all(t.upper() in records.PLAIN_TYPES for t in self.columns.values())
        #: rows of /api/samples/<id> (and of row()) from memory (server/rowcache.py)
        self.row_cache = (
            RowCache(run.db.row_block, settings.row_cache_bytes)
            if settings.row_cache_bytes and self._plain_columns
            else None
        )
        self.tag = run_tag(run)
        self._map_cache: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
        self._columns: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
        self._heatmaps: OrderedDict[tuple[int, int, str], np.ndarray] = OrderedDict()
        #: a large run's viewports from memory (server/viewports.py), built on first use
        self.held_map = HeldMap(self, self.map_columns)
        lanes = lanes or Lanes.of(settings)
        self.heatmap_lane = lanes.heatmap
        self.compute_lane = lanes.compute

    @property
    def _held_wait(self) -> float:
        """How long a viewport waits for the held map's columns: HELD_MAP_WAIT, and at most half
        the lane's timeout (a request past it is a 503)."""
        return min(HELD_MAP_WAIT, self.settings.heavy_timeout / 2)

    @property
    def map_columns(self) -> tuple[str, ...]:
        """The MAP_COLUMNS this run has: every map payload and viewport carries them."""
        return self.coder.map_columns

    @property
    def lanes(self) -> Lanes:
        return Lanes(self.heatmap_lane, self.compute_lane)

    @functools.cached_property
    def worker_spec(self) -> StateSpec | None:
        """How a heavy lane's worker process opens this run the same way (heavy.py), or None
        when it cannot: a run opened with an in-memory integration or model."""
        return worker_spec(self.run, self.settings, self.tag)

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
        """Make a large run's map overview, then load the heavy libraries behind heatmaps and
        similars before anyone asks.

        Waits ``delay`` seconds before the libraries, so the page's first load does not compete
        with importing torch for the interpreter.
        """
        if self.n == 0:
            return
        try:  # a large run's map overview first, at once: the page's first request waits for it
            if self.sampled and self.has_map:
                # meanwhile the compute lane's worker process (viewports, counts) opens the run
                # and reads the map's index: ``serve`` started it already (start_compute_worker),
                # and this finds it up; a server made otherwise (create_app) starts it here
                threading.Thread(target=self._warm_worker, daemon=True, name="samplescope-compute-warm").start()
                self.map_payload(None, [])
                self.distinct_counts  # noqa: B018 - the legend's first count asks for them
        except Exception:  # shown again, with its message, on the real request
            log.debug("map prewarm failed", exc_info=True)
        time.sleep(delay)
        if self.heatmap_lane.kind == "thread" or self.worker_spec is None:  # heatmaps in this process
            import torch

            # One thread per request: concurrent heatmap requests on few cores are faster
            # (and their latency steadier) than each one spreading over every core.
            torch.set_num_threads(1)
        # (with worker processes the server never imports torch: about 180 MiB less)
        try:
            if self.row_cache is not None:  # the rows of /api/samples/<id>, the page's every click
                self.row_cache.fill(self.n)
            self.similar([0], k=1)
            if self.run.trusted:  # an untrusted run's code is never imported, not even to warm up
                self.image(0)
                usable = [m for m, why in self.run.attribution_methods().items() if why is None]
                if usable:  # a vector run has no Grad-CAM: warm the method its page asks for first
                    self.heatmap_lane.call(self.heatmap, 0, None, usable[0])
            self.compute_lane.call(self.rows_of, [0])  # a worker process starts and opens the run
        except Exception:  # a failure here shows again, with its message, on the real request
            log.debug("prewarm failed", exc_info=True)
        else:
            log.info("heatmaps and similars are warm")

    def _warm_worker(self) -> None:
        try:
            self.compute_lane.call(self.warm_viewports)
        except Exception:  # shown again, with its message, on the real request
            log.debug("compute worker prewarm failed", exc_info=True)

    # --- samples ----------------------------------------------------------------------------

    def rows_of(self, sample_ids: Sequence[int]) -> np.ndarray:
        """``sample_ids`` as an array (ids are rows 0..N-1); NotFoundError names unknown ids."""
        out_of_range = [i for i in sample_ids if not 0 <= int(i) <= limits.MAX_SAMPLE_ID]
        if out_of_range:  # the routes check this first; a 422, not numpy's OverflowError
            raise ParameterError(
                f"sample id {out_of_range[0]} is not a sample id; ids are integers "
                f"from 0 to {limits.MAX_SAMPLE_ID}"
            )
        ids = np.asarray([int(i) for i in sample_ids], dtype=np.int64)
        bad = ids[ids >= self.n]
        if bad.size:
            raise NotFoundError(
                f"no sample with id {', '.join(map(str, bad[:5].tolist()))} in run "
                f"{self.run.name!r}; sample ids run from 0 to {self.n - 1}"
            )
        return ids

    def rows(self, sample_ids: Sequence[int], columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows of these samples (checked), in the order given: one query."""
        return self.run.db.rows(self.rows_of(sample_ids), columns)

    def row(self, sample_id: int, columns: Sequence[str] | None = None) -> dict[str, Any]:
        """One sample's columns (checked) as plain Python values: one query, no DataFrame."""
        self.rows_of([sample_id])
        if self.row_cache is not None and (columns is None or all(c in self.columns for c in columns)):
            found = self.row_cache.row(int(sample_id))
            if found is not None and columns is not None:  # what RunDatabase.row selects
                found = {c: found[c] for c in dict.fromkeys(["sample_id", *columns])}
        else:
            found = self.run.db.row(sample_id, columns)
        if found is None:  # ids are rows 0..N-1, so only a damaged table gets here
            raise NotFoundError(f"no sample with id {sample_id} in run {self.run.name!r}")
        return found

    def sample_record(self, sample_id: int) -> dict[str, Any]:
        """Every column of one sample as the API sends it: :meth:`records` of its row, read
        without a DataFrame when every column is of a plain type (server/records.py)."""
        if self._plain_columns:
            return records.record(self.row(sample_id), self.classes, self.class_columns)
        return self.records(self.rows([sample_id]))[0]

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

    def legend_columns(self) -> list[str]:
        """Columns /api/map/counts counts by: categories and yes/no with at most MAX_LEGEND values."""
        return [
            c for c, k in self.kinds.items()
            if k != "numeric" and self.distinct_counts[c] <= limits.MAX_LEGEND
        ]  # fmt: skip

    @functools.cached_property
    def distinct_counts(self) -> dict[str, int]:
        """Distinct values per column (a missing value counts as one), for the limits: exact up to
        the largest of them, an estimate (far above it) for columns with many more values."""
        saved = serving.saved_distinct_counts((self.run.info.get("analysis") or {}).get("distinct_counts"),
                                              list(self.columns), limits.DISTINCT_EXACT_BELOW)  # fmt: skip
        if saved is not None:  # counted by analyze (at 10M: 1 s of the server's start-up otherwise)
            return saved
        return serving.distinct_counts(self.run.db, list(self.columns), exact_below=limits.DISTINCT_EXACT_BELOW)

    def aggregate(
        self, x: str, y: str, by: str | None, subset: str | None, bins: int
    ) -> pd.DataFrame:
        """``y`` over bins (or values) of ``x``, computed in DuckDB (store/aggregate.py) for
        ``subset`` only, within the server's limits."""
        from samplescope.store.aggregate import aggregate

        return aggregate(
            self.run.db, x, y, by, subset=subset, bins=bins,
            max_bins=limits.MAX_BINS, max_groups=limits.MAX_GROUPS, max_values=limits.MAX_BINS,
        )  # fmt: skip

    def class_index(self, value: str | int) -> int:
        """A class given by index or by name."""
        found = self.find_class(value)
        if found is None:
            raise ParameterError(
                f"class {value!r} is neither a class name nor an index below {len(self.classes)}; "
                f"classes: {', '.join(self.classes)}"
            )
        return found

    def find_class(self, value: str | int) -> int | None:
        text = str(value)
        if text in self.classes:
            return self.classes.index(text)
        try:
            index = int(text)
        except ValueError:
            return None
        return index if 0 <= index < len(self.classes) else None

    def records(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Rows as JSON-ready dicts (NaN -> None) with class names beside class indices."""
        return records.records(frame, self.classes, self.class_columns)

    def class_names(self, values: pd.Series) -> list[str | None]:
        return records.class_names(self.classes, values)

    # --- the map ----------------------------------------------------------------------------

    @property
    def has_map(self) -> bool:
        return "map_x" in self.columns and "map_y" in self.columns

    @property
    def sampled(self) -> bool:
        """Whether the map is too large to send whole: the page gets an overview and viewports."""
        return self.n > self.settings.map_full_max

    def require_map(self) -> None:
        if not self.has_map:
            raise RunError(
                f"run {self.run.name!r} has no 2-D map (map_x, map_y); "
                f"analyse it again with `samplescope analyze {self.run.path}`"
            )

    @functools.cached_property
    def map_rows(self) -> np.ndarray | None:
        """The sample ids the map payload carries: None for every sample, else the overview."""
        if not self.sampled:
            return None
        started = time.perf_counter()
        points, group = self.settings.map_overview_points, self.task.map_group_sql
        made = (self.run.info.get("analysis") or {}).get("map_overview")
        ids = map_queries.run_overview(self.run.path, made, self.run.db, self.n, points, group)
        log.info("map overview: %d of %d samples in %.2f s", len(ids), self.n,
                 time.perf_counter() - started)  # fmt: skip
        return ids

    def map_payload(self, color: str | None, columns: Sequence[str]) -> bytes:
        key = (color or "", *sorted(set(columns)))
        with self._cache_lock:
            if key in self._map_cache:
                self._map_cache.move_to_end(key)
                return self._map_cache[key]
        with self._overview_lock:  # the prewarm and the page's first request share one overview
            self.map_rows  # noqa: B018 - computed once, here
        payload = self._encode_map(color, columns)
        with self._cache_lock:
            self._map_cache[key] = payload
            while len(self._map_cache) > 32:
                self._map_cache.popitem(last=False)
        return payload

    def _encode_map(self, color: str | None, columns: Sequence[str]) -> bytes:
        self.require_map()
        with self._map_lock:  # one reader of whole columns at a time
            rows = self.map_rows
            arrays = {"x": self.map_column("map_x"), "y": self.map_column("map_y")}
            if rows is not None:
                arrays["sample_id"] = (rows.astype("<u4"), {"kind": "numeric", "dtype": "uint32"})
            wanted = list(self.map_columns)
            wanted += [c for c in [color, *columns] if c and c not in wanted]
            for name in wanted:
                arrays[name] = self.map_column(name)
        meta = {
            "ids": "rows" if rows is None else "sample_id",
            "color": color,
            "classes": self.classes,
            "total": self.n,
            "sampled": rows is not None,
        }
        return encoding.pack_columns(arrays, self.n if rows is None else len(rows), meta)

    def map_column(self, name: str) -> tuple[np.ndarray, dict[str, Any]]:
        """One column encoded for the map payload's rows (every sample, or the overview),
        read once and kept (a few bytes per row): for the overview, a column analyze saved
        coded is gathered from its file (at 10M: the five MAP_COLUMNS read by id from DuckDB took
        about 0.2 s each, and held back the first viewports), the rest read by id from DuckDB
        (both positions in one query)."""
        if name not in self._columns:
            rows = self.map_rows
            saved = self.saved_map_column(name) if rows is not None else None
            if saved is not None:
                self._columns[name] = (saved[0][rows], saved[1])
            elif name in ("map_x", "map_y"):
                both = self.run.samples(columns=["map_x", "map_y"]) if rows is None else self.run.db.rows(rows, ["map_x", "map_y"])
                for axis in ("map_x", "map_y"):
                    arr = both[axis].to_numpy(dtype="<f4", na_value=np.nan)
                    self._columns[axis] = (arr, {"kind": "numeric", "dtype": "float32"})
            else:  # only the overview's rows, picked in DuckDB: at 10M a text column took 1.8 s whole, 0.36 s so
                values = self.run.samples(columns=[name])[name] if rows is None else \
                    self.run.db.rows(rows, [name])[name].reset_index(drop=True)  # fmt: skip
                self._columns[name] = self.encode_values(name, values)
        return self._columns[name]

    def saved_map_column(self, name: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        """Every sample's ``name`` coded, as analyze saved it beside a large run's map index (the
        MAP_COLUMNS of a run analysed since it did); None when there is none, or the file or its
        record does not fit this run (checked: store/map_index.saved_column, and the categories
        against the run's class names and subsets)."""
        made = (self.run.info.get("analysis") or {}).get("map_index")
        entries = made.get("columns") if isinstance(made, dict) else None
        if name not in self.map_columns or not isinstance(entries, dict) or name not in entries:
            return None
        found = map_index.saved_column(self.run.path / layout.MAP_INDEX, name, entries[name], self.n)
        if found is not None and (self.kinds[name] == "numeric") == ("categories" not in found[1]) and (
                "categories" not in found[1] or found[1]["categories"] == self.categories(name)):  # fmt: skip
            return found
        log.warning("the saved map column %s does not fit run %s; reading it from the table", name, self.run.name)
        return None

    def viewport_payload(
        self,
        box: tuple[float, float, float, float],
        conditions: Sequence[serving.Condition],
        color: str | None,
        columns: Sequence[str],
        limit: int,
    ) -> bytes:
        """Every sample inside ``box`` (x0, x1, y0, y1) matching ``conditions``, as a map payload
        with ``sample_id``; a seeded random ``limit`` of them when there are more. A large run's
        box with no filter but a subset is answered from memory (server/viewports.py), others
        by DuckDB (at 10M: about 60 ms in-process, ~190 ms in the compute worker)."""
        self.require_map()
        wanted = list(self.map_columns)
        wanted += [c for c in [color, *columns] if c and c not in wanted]
        if self.sampled and HeldMap.answers(conditions) and self.held_map.serves(wanted, wait=self._held_wait):
            arrays, total = self.held_map.rows(box, conditions, wanted, limit)
        else:
            rows, total = map_queries.in_box(self.run.db, box, conditions, wanted, limit)
            arrays = {
                "x": (rows["map_x"].to_numpy(dtype="<f4", na_value=np.nan), {"kind": "numeric", "dtype": "float32"}),
                "y": (rows["map_y"].to_numpy(dtype="<f4", na_value=np.nan), {"kind": "numeric", "dtype": "float32"}),
                "sample_id": (rows["sample_id"].to_numpy(dtype="<u4"), {"kind": "numeric", "dtype": "uint32"}),
            }
            for name in wanted:
                arrays[name] = self.encode_values(name, rows[name])
        meta = {
            "ids": "sample_id", "color": color, "classes": self.classes, "total": total,
            "complete": total <= limit, "box": list(box),
        }  # fmt: skip
        return encoding.pack_columns(arrays, len(arrays["sample_id"][0]), meta)

    def warm_viewports(self, wait: bool = False) -> None:
        """In the compute worker, at startup: a large run's map index and viewport columns are
        read in a background thread (``wait``: here, before returning)."""
        if self.sampled and self.has_map:
            if wait:
                self.held_map.warm()
            else:
                self.held_map.serves([])

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
        if target is None:
            target = int(self.row(sample_id, ["prediction"])["prediction"])
        else:
            self.rows_of([sample_id])
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
        """The ``k`` nearest samples to one sample or a set: their table rows (read with the
        neighbours, one query) and ``similarity``."""
        self.rows_of(sample_ids)
        ids = [int(i) for i in sample_ids]
        if len(ids) == 1:
            found = self._neighbors(self.run.similar, ids[0], k=k, subset=subset, columns=self.row_columns)
        else:
            found = self._neighbors(
                self.run.similar_to_set, ids, k=k, subset=subset, columns=self.row_columns
            )
        rows = found[self.row_columns].copy()
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
        return tuple(self.image(0).shape[:2])  # type: ignore[return-value]

    @functools.cached_property
    def picture_problem(self) -> str | None:
        """Why the samples have no pictures (an input shape nothing draws, no visualizer), else None."""
        from samplescope.errors import PictureError

        if self.n == 0 or not self.run.trusted:  # an untrusted run's pictures are off for another reason
            return None
        shape = tuple(self.run.info.get("input_shape") or ())
        if len(shape) in (1, 2) or (len(shape) == 3 and shape[0] in (1, 3)):
            return None  # a shape the built-in pictures draw (run.json says so: nothing to compute)
        try:
            self.image(0)
        except PictureError as exc:
            return str(exc)
        except Exception:  # another failure shows with its own message on the picture's request
            log.debug("picture of sample 0 failed", exc_info=True)
        return None


def lane_of(s: Settings, name: str) -> Lane:
    """The heavy lane ``name`` as ``s`` sizes it: its worker processes are shared with every
    other lane of the same name and size in this process (heavy.py)."""
    size = {"workers": s.heavy_workers, "queue": s.heavy_queue, "timeout": s.heavy_timeout}
    if s.heavy_processes:
        return ProcessLane(name, **size, cpus=s.heavy_cpus, nice=s.heavy_nice)
    return Lane(name, **size)


def worker_spec(run: Run, settings: Settings, tag: str | None = None) -> StateSpec | None:
    """How a heavy lane's worker process opens ``run`` as a server with ``settings`` would, or
    None when it cannot: a run opened with an in-memory integration or model."""
    integration = getattr(run, "_given_integration", None)
    if getattr(run, "_given_model", None) is not None or not isinstance(integration, str | Path | None):
        return None
    # (the lanes' own sizes are left out, so servers that differ only in them share a worker)
    settings = dataclasses.replace(
        settings, heavy_processes=False, prewarm=False, heavy_workers=1, heavy_queue=0,
        heavy_timeout=1.0, heavy_cpus=0, heavy_nice=0,
    )  # fmt: skip
    trust, device = bool(getattr(run, "_trust", False)), getattr(run, "_device_spec", "auto")
    args = (trust, integration, device, settings)
    return StateSpec(open=open_worker_state, path=str(run.path), tag=tag or run_tag(run), args=args)


def start_compute_worker(run: Run, settings: Settings) -> threading.Thread | None:
    """``serve``'s head start for a run too large to send whole: its compute worker process is
    spawned now, and opens the run and reads the map's index and viewport columns, while this
    process imports the web app (0.7 s here) and builds its own state. The server's lanes find
    that worker up (the same lane name and size, the same spec). Without it, the worker started
    with the prewarm, as the server became ready, and the viewports asked in the first second
    waited for its 0.7 s start (docs/scale.md). None (nothing started) for a smaller run, with
    ``prewarm`` or ``heavy_processes`` off, or when the run cannot be reopened in a worker."""
    if not (settings.prewarm and settings.heavy_processes) or len(run) <= settings.map_full_max:
        return None
    spec = worker_spec(run, settings)
    if spec is None:
        return None
    lane = lane_of(settings, "compute")

    def start() -> None:
        try:
            lane.call(_warm_viewports, _Spec(spec))
        except Exception:  # the prewarm starts it again, and a failure shows on the real request
            log.debug("the compute worker's early start failed", exc_info=True)
        finally:
            lane.release()

    thread = threading.Thread(target=start, daemon=True, name="samplescope-compute-start")
    thread.start()
    return thread


@dataclass(frozen=True)
class _Spec:
    """A job's stand-in for a server state not built yet: a lane sends it as its spec."""

    worker_spec: StateSpec


def _warm_viewports(state: ServerState) -> None:
    state.warm_viewports()


def open_worker_state(spec: StateSpec) -> ServerState:
    """In a heavy lane's worker process: the server state of ``spec``'s run (heavy.py)."""
    trust, integration, device, settings = spec.args
    run = load_run(spec.path, trust=trust, integration=integration, device=device or "auto")
    return ServerState(run, settings)


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


def run_tag(run: Run) -> str:
    """A short fingerprint of the run, for ETags (images never change within a run)."""
    text = json.dumps(run.info, sort_keys=True, default=str) + str(run.path)
    return hashlib.sha1(text.encode()).hexdigest()[:16]

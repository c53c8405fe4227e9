"""Viewports of a large run from memory: the map's grid index and the payload's columns.

A run too large to send whole (``Settings.map_full_max``) answers ``/api/map/viewport`` from
a :class:`~samplescope.store.map_index.MapIndex` and the columns every viewport carries
(``MAP_COLUMNS``, encoded as the payload carries them, in ``sample_id`` order), held by the
process that answers viewports (the compute worker) and read there when the server starts
(``ServerState.warm_viewports``): the index from the run folder, where ``analyze`` saved it
(``map_index.save_index``; built here for a run analysed before it: about 4 s at 10M), the
MAP_COLUMNS from the same folder, where ``analyze`` saved them coded as the server codes them
(``server/coding.py``, ``map_index.save_column``), and any other column from DuckDB (about
0.1 to 0.3 s a column at 10M; the five MAP_COLUMNS read and coded so took 0.56 s, which the
first viewports after start-up waited for). Reading those rows back from DuckDB by id instead
took 0.9 s for 93k ids of a 1M run; gathering them from memory takes a few milliseconds.

A box with no filter, or with a subset, is answered here once the index and the columns it
asks for are held; until then (the first seconds after start-up at 10M, or the first request
for another colour) a background thread reads what is missing, and the request waits for it
up to ``HELD_MAP_WAIT`` (5 s) when the index was saved by ``analyze`` (only columns left to
read), else goes to DuckDB at once (a run analysed before the index was saved: building it
takes about 4 s at 10M). One with another filter (a value range, a legend value) goes
to DuckDB (``map_queries.in_box``). Both count every sample
inside; when there are more than ``limit``, this draws its ``limit`` by a splitmix64 hash of
the id (``map_index.seeded_pick``), DuckDB by its own ``hash``: other samples, as seeded.

Memory (10M samples): the index about 125 MB, the five MAP_COLUMNS 8 bytes a sample (80 MB),
and a colour or other column asked for 1 to 4 bytes a sample (the last ``EXTRA`` of them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from samplescope.store import layout, map_index
from samplescope.store.map_index import MapIndex
from samplescope.store.serving import Condition

if TYPE_CHECKING:
    from samplescope.server.state import ServerState

log = logging.getLogger(__name__)

#: columns other than the MAP_COLUMNS kept at once (a colour asked for, ...): LRU
EXTRA = 4
Encoded = tuple[np.ndarray, dict[str, Any]]


class HeldMap:
    """One run's map index and encoded columns, safe from many threads: built by
    :meth:`warm` (or in the background by :meth:`serves`), read by :meth:`rows`."""

    def __init__(self, state: ServerState, always: Sequence[str]) -> None:
        self.state = state
        self.always = tuple(always)
        self._lock = threading.Lock()  # guards the dict and the build flags, never held while reading
        self._build = threading.Lock()  # one build at a time
        self._index: MapIndex | None = None
        self._columns: OrderedDict[str, Encoded] = OrderedDict()
        self._building = False
        self._filled = threading.Event()  # set when a background read ends

    @property
    def index(self) -> MapIndex:
        if self._index is None:
            with self._build:
                if self._index is None:
                    run = self.state.run  # the one analyze saved, else built here (an older run)
                    made = (run.info.get("analysis") or {}).get("map_index")
                    saved = MapIndex.saved(run.path / layout.MAP_INDEX, made, self.state.n)
                    self._index = saved if saved is not None else MapIndex.of_run(run.db)
        return self._index

    def column(self, name: str) -> Encoded:
        """Every sample's ``name``, encoded for the payload, in ``sample_id`` order."""
        with self._lock:
            if name in self._columns:
                self._columns.move_to_end(name)
                return self._columns[name]
        started = time.perf_counter()
        found = self._read(name)
        with self._lock:
            self._columns[name] = found
            extra = [c for c in self._columns if c not in self.always]
            for old in extra[: max(0, len(extra) - EXTRA)]:
                del self._columns[old]
        log.info("viewport column %s: %.0f MB, %.2f s", name, found[0].nbytes / 1e6, time.perf_counter() - started)
        return found

    def serves(self, names: Sequence[str], wait: float = 0.0) -> bool:
        """Whether the index and every column of ``names`` are held; if not, a background
        thread starts reading what is missing (one at a time) and the caller asks DuckDB.

        ``wait``: when analyze saved the index (so only columns are left to read: about 1.5 s
        at 10M, where a box from DuckDB on the worker's one core beside that read took up to
        6 s), wait up to this many seconds for that read before answering False."""
        with self._lock:
            if self._held(names):
                return True
            # decided before the read starts (a tiny run's index may be built before the check)
            may_wait = wait > 0 and (self._index is not None or self._saved())
            if not self._building:
                self._building = True
                self._filled.clear()
                threading.Thread(target=self._fill, args=(list(names),), daemon=True, name="viewport-index").start()
        if may_wait:
            self._filled.wait(wait)
            with self._lock:
                return self._held(names)
        return False

    def _held(self, names: Sequence[str]) -> bool:
        return self._index is not None and all(n in self._columns for n in names)

    def _saved(self) -> bool:
        """Whether run.json records a map index that analyze saved (read in well under a second)."""
        return bool((self.state.run.info.get("analysis") or {}).get("map_index"))

    def _fill(self, names: list[str]) -> None:
        try:
            self.warm(names)
        except Exception:  # the DuckDB path keeps answering, and says what is wrong
            log.warning("the viewport index could not be built", exc_info=True)
        finally:
            with self._lock:
                self._building = False
            self._filled.set()

    def _read(self, name: str) -> Encoded:
        """The column as analyze saved it coded beside the index (a MAP_COLUMN of a run analysed
        since it did: loaded in milliseconds), else read from the table and coded here."""
        found = self.state.saved_map_column(name)
        return found if found is not None else self.state.coder.whole(name)

    def warm(self, names: Sequence[str] = ()) -> None:
        """Build the index and read the columns every viewport carries, and ``names``."""
        self.index  # noqa: B018
        for name in dict.fromkeys([*self.always, *names]):
            self.column(name)

    @staticmethod
    def answers(conditions: Sequence[Condition]) -> bool:
        """Whether a viewport with these filters is answered here (none, or a subset)."""
        return all(c.column == "subset" and c.op == "==" for c in conditions) and len(conditions) <= 1

    def rows(
        self, box: tuple[float, float, float, float], conditions: Sequence[Condition], names: Sequence[str],
        limit: int, seed: int = 0,
    ) -> tuple[dict[str, Encoded], int]:
        """The payload's arrays (``x``, ``y``, ``sample_id`` and ``names``) of the samples inside
        ``box`` that ``conditions`` keep (see :meth:`answers`), and how many there are."""
        index = self.index
        pos = index.box(*box)
        ids = index.ids[pos]
        for c in conditions:  # a subset
            codes, entry = self.column("subset")
            cats = list(entry["categories"])
            keep = codes[ids] == cats.index(c.value) if c.value in cats else np.zeros(len(ids), bool)
            pos, ids = pos[keep], ids[keep]
        total = len(ids)
        picked = map_index.seeded_pick(ids, limit, seed)
        pos, ids = pos[picked], ids[picked]
        by_id = np.argsort(ids, kind="stable")
        pos, ids = pos[by_id], ids[by_id]
        numeric = {"kind": "numeric", "dtype": "float32"}
        arrays: dict[str, Encoded] = {
            "x": (index.x[pos].astype("<f4"), numeric),
            "y": (index.y[pos].astype("<f4"), numeric),
            "sample_id": (ids.astype("<u4"), {"kind": "numeric", "dtype": "uint32"}),
        }
        for name in names:
            codes, entry = self.column(name)
            arrays[name] = (codes[ids], entry)
        return arrays, total

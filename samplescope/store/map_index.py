"""An in-memory grid index of the 2-D map, for the viewports of runs of millions of samples.

The samples table is in ``sample_id`` order, not map order, so a box in DuckDB
(:func:`samplescope.store.map_queries.in_box`) reads every row's position: at 10M samples
60 ms in-process and about 190 ms in the server's compute worker (one core, lower priority),
with a second query to draw ``limit`` of them when there are more. This index answers the
same box from memory: every placed sample (finite ``map_x`` and ``map_y``; NULL, NaN and
infinite positions are never inside a finite box, as in DuckDB) sorted by the cell of a
``grid`` x ``grid`` grid over their extent, with each cell's first position in ``offsets``.

A box touches grid rows ``cy0..cy1`` and, in each, the cells ``cx0..cx1``: one contiguous
span of positions per row. Every point of those spans is tested exactly, in float64 on the
stored values (what DuckDB's ``BETWEEN`` does with a FLOAT column and DOUBLE bounds), and no
point outside them can be inside: a point's cell is a monotone function of its position, so
a cell left of the box's first cell holds only points left of the box (the box's cells are
widened by one on each side, as the points' cells are computed in float32 and the bounds'
in float64). The total is exact; edges are included.

Memory: an id (4 bytes below 2**32 samples) and both positions in their stored dtype (4 bytes
each for FLOAT) per placed sample, and 8 bytes per cell: about 125 MB at 10M samples.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samplescope.errors import RunError
from samplescope.store import layout
from samplescope.store.database import RunDatabase
from samplescope.store.query import quote

log = logging.getLogger(__name__)

#: the grid's cells per side: about ``POINTS_PER_CELL`` placed samples a cell when spread
#: evenly, a power of two from 1 to ``MAX_GRID``
POINTS_PER_CELL = 32
MAX_GRID = 1024

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class MapIndex:
    """Placed samples in grid-cell order: ``ids``, ``x``, ``y`` (M,), ``offsets`` (grid**2 + 1,)."""

    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    offsets: np.ndarray
    grid: int
    #: (x0, x1, y0, y1) of the placed samples
    extent: tuple[float, float, float, float]

    @classmethod
    def build(cls, ids: np.ndarray, x: np.ndarray, y: np.ndarray, grid: int | None = None) -> MapIndex:
        """The index of samples ``ids`` at (``x``, ``y``), each (N,); positions keep their dtype."""
        ids, x, y = np.asarray(ids), np.asarray(x), np.asarray(y)
        placed = np.isfinite(x) & np.isfinite(y)
        ids, x, y = ids[placed], x[placed], y[placed]
        if grid is None:
            side = np.sqrt(max(len(ids), 1) / POINTS_PER_CELL)
            grid = int(min(MAX_GRID, 2 ** max(0, round(np.log2(max(side, 1.0))))))
        if len(ids):
            extent = (float(x.min()), float(x.max()), float(y.min()), float(y.max()))
        else:
            extent = (0.0, 1.0, 0.0, 1.0)
        cells = _cell(y, extent[2], extent[3], grid)
        cells *= grid
        cells += _cell(x, extent[0], extent[1], grid)
        # ids stay ascending within a cell; uint32 cells sort faster (10M: 1.5 s against 1.8)
        order = np.argsort(cells, kind="stable")
        offsets = np.zeros(grid * grid + 1, dtype=np.int64)
        np.cumsum(np.bincount(cells, minlength=grid * grid), out=offsets[1:])
        small = np.uint32 if not len(ids) or int(ids.max()) < 2**32 else np.int64
        return cls(ids[order].astype(small), x[order], y[order], offsets, grid, extent)

    @classmethod
    def of_run(cls, db: RunDatabase, grid: int | None = None) -> MapIndex:
        """The index of a run's map: ``sample_id``, ``map_x``, ``map_y`` read in one query.
        The table's ids must be 0..N-1 in its order (as the store writes it), so that a column
        read whole (:func:`whole_column`) is indexed by sample id."""
        started = time.perf_counter()
        found = db.fetch_numpy('SELECT "sample_id", "map_x", "map_y" FROM {source}')
        ids = np.asarray(found["sample_id"])
        if not np.array_equal(ids, np.arange(len(ids))):  # what columns read whole rely on
            raise RunError(f"{db.path}: the samples table is not in sample_id order 0..N-1; "
                           "analyse the run again")  # fmt: skip
        x, y = (_positions(found[c]) for c in ("map_x", "map_y"))
        index = cls.build(ids, x, y, grid=grid)
        log.info("map index: %d placed samples, grid %d, %.0f MB, %.2f s", len(index.ids), index.grid,
                 index.nbytes / 1e6, time.perf_counter() - started)  # fmt: skip
        return index

    def save(self, folder: Path) -> dict[str, Any]:
        """Write the arrays to ``folder`` (:data:`~samplescope.store.layout.MAP_INDEX_PARTS`);
        return what run.json records of the rest (read back by :meth:`saved`)."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, values in zip(layout.MAP_INDEX_PARTS, (self.ids, self.x, self.y, self.offsets), strict=True):
            np.save(folder / name, values, allow_pickle=False)
        return {"grid": int(self.grid), "extent": [float(v) for v in self.extent], "placed": len(self.ids)}

    @classmethod
    def saved(cls, folder: Path, made: dict[str, Any] | None, n: int) -> MapIndex | None:
        """The index :meth:`save` wrote for a run of ``n`` samples, when ``folder`` holds one
        that fits ``made`` (run.json's record); else None, and the caller builds one. The
        files are data: each is checked before a box can index with it (ids below ``n``,
        offsets that span the ids in order, a grid as :meth:`build` makes)."""
        if not isinstance(made, dict):
            return None
        try:
            grid, placed = int(made["grid"]), int(made["placed"])
            extent = tuple(float(v) for v in made["extent"])
            ids, x, y, offsets = (np.load(folder / name, allow_pickle=False) for name in layout.MAP_INDEX_PARTS)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        fits = (
            1 <= grid <= MAX_GRID and len(extent) == 4 and all(np.isfinite(extent))
            and extent[0] <= extent[1] and extent[2] <= extent[3]
            and ids.shape == x.shape == y.shape == (placed,) and ids.dtype.kind in "iu"
            and x.dtype.kind == y.dtype.kind == "f" and offsets.shape == (grid * grid + 1,)
            and offsets.dtype == np.int64
        )
        if fits:
            fits = (placed <= n and offsets[0] == 0 and offsets[-1] == placed
                    and bool((np.diff(offsets) >= 0).all())
                    and (not placed or (int(ids.min()) >= 0 and int(ids.max()) < n)))  # fmt: skip
        if not fits:
            log.warning("%s does not hold this run's map index; building one", folder)
            return None
        return cls(ids, x, y, offsets, grid, extent)  # type: ignore[arg-type]

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.x.nbytes + self.y.nbytes + self.offsets.nbytes

    def box(self, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
        """Positions (into ``ids``, ``x``, ``y``; ascending) of the samples inside the box,
        edges included; the bounds in either order."""
        lo_x, hi_x = np.float64(min(x0, x1)), np.float64(max(x0, x1))
        lo_y, hi_y = np.float64(min(y0, y1)), np.float64(max(y0, y1))
        ex0, ex1, ey0, ey1 = self.extent
        if not len(self.ids) or hi_x < ex0 or lo_x > ex1 or hi_y < ey0 or lo_y > ey1:
            return np.zeros(0, dtype=np.int64)
        g = self.grid
        # the bounds' cells in float64, a cell wider on each side: the points' cells were
        # computed in their own width (float32), which may round across a cell's edge
        cx0, cx1 = (int(c) for c in _cell(np.array([lo_x, hi_x]), ex0, ex1, g))
        cy0, cy1 = (int(c) for c in _cell(np.array([lo_y, hi_y]), ey0, ey1, g))
        cx0, cy0, cx1, cy1 = max(cx0 - 1, 0), max(cy0 - 1, 0), min(cx1 + 1, g - 1), min(cy1 + 1, g - 1)
        rows = np.arange(cy0, cy1 + 1) * g
        starts, ends = self.offsets[rows + cx0], self.offsets[rows + cx1 + 1]
        lens = ends - starts
        # the spans' positions, one arange: position k of span j is starts[j] + k
        pos = np.arange(int(lens.sum()), dtype=np.int64) + np.repeat(starts - (np.cumsum(lens) - lens), lens)
        x, y = self.x[pos], self.y[pos]
        # np.float64 bounds: the comparison is in float64 (a Python float would compare in float32)
        inside = (x >= lo_x) & (x <= hi_x) & (y >= lo_y) & (y <= hi_y)
        return pos[inside]


def save_index(db: RunDatabase, folder: Path, n: int, full_max: int) -> dict[str, Any] | None:
    """Write a run's map index to ``folder``/MAP_INDEX when it has more than ``full_max``
    samples (the server's ``map_full_max``: only then are viewports asked for) and return what
    run.json records of it; None, and no folder, for a run small enough to send whole."""
    path = Path(folder) / layout.MAP_INDEX
    shutil.rmtree(path, ignore_errors=True)  # stale: an earlier analysis
    if n <= full_max:
        return None
    try:
        index = MapIndex.of_run(db)
    except RunError as e:  # the server builds none either, and asks DuckDB
        log.warning("no map index saved: %s", e)
        return None
    return index.save(path)


#: the coded columns' dtypes, by the name the payload's header gives (server/encoding.py)
CODED_DTYPES = {"float32": np.dtype("<f4"), "uint8": np.dtype("u1"), "uint16": np.dtype("<u2"),
                "int32": np.dtype("<i4")}  # fmt: skip


def save_column(folder: Path, name: str, values: np.ndarray) -> None:
    """Write one coded column (every sample, in ``sample_id`` order) to ``folder``
    (:data:`~samplescope.store.layout.MAP_INDEX_COLUMN`); run.json records how it is coded, and
    :func:`saved_column` checks the file against that record."""
    if not name.isidentifier():  # a file name: MAP_COLUMNS only
        raise ValueError(f"column {name!r} cannot be saved as a map column")
    np.save(folder / layout.MAP_INDEX_COLUMN.format(name), values, allow_pickle=False)


def saved_column(folder: Path, name: str, entry: Any, n: int) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The coded column :func:`save_column` wrote for a run of ``n`` samples, when ``folder``
    holds one that fits ``entry`` (run.json's record of it); else None, and the caller reads the
    column from the table. The file is data: its shape and dtype, and the entry's kind, dtype,
    categories and range are checked before a viewport indexes with it."""
    if not name.isidentifier() or not isinstance(entry, dict):
        return None
    kind, dtype = entry.get("kind"), CODED_DTYPES.get(entry.get("dtype"))  # type: ignore[arg-type]
    cats = entry.get("categories")
    fits = dtype is not None and (
        (kind == "numeric" and dtype.kind == "f"
         and all(entry.get(k) is None or isinstance(entry.get(k), int | float) for k in ("min", "max")))
        or (kind in ("categorical", "bool") and dtype.kind in "iu" and isinstance(cats, list)
            and all(isinstance(c, str) for c in cats))
    )  # fmt: skip
    if not fits:
        return None
    try:
        values = np.load(folder / layout.MAP_INDEX_COLUMN.format(name), allow_pickle=False)
    except (OSError, ValueError):
        return None
    if kind != "numeric" and len(values):  # codes index the categories, or are the missing code
        missing = -1 if dtype.kind == "i" else np.iinfo(dtype).max
        coded = (values >= 0) & (values < len(cats))  # type: ignore[arg-type]
        if not (coded | (values == missing)).all():
            values = values[:0]
    if values.shape != (n,) or values.dtype != dtype:  # (the caller says so, and reads the table)
        return None
    return values, dict(entry)


def _positions(values: Any) -> np.ndarray:
    """A position column (numpy, or masked where NULL) as floats of its stored width (FLOAT:
    float32), NULL as NaN."""
    dtype = values.dtype if values.dtype.kind == "f" else np.float64
    return np.ma.filled(np.ma.asarray(values).astype(dtype), np.nan)


def _cell(v: np.ndarray, lo: float, hi: float, grid: int) -> np.ndarray:
    """Grid column (or row) of each value as uint32: monotone in ``v`` (each step of the
    arithmetic, rounded in the values' own float width, is), clipped to 0..grid-1."""
    v = np.asarray(v)
    v = v if v.dtype.kind == "f" else v.astype(np.float64)
    scale = v.dtype.type(grid / ((hi - lo) or 1.0))
    c = v - v.dtype.type(lo)
    c *= scale
    np.floor(c, out=c)
    np.clip(c, 0, grid - 1, out=c)
    return c.astype(np.uint32)


def seeded_pick(ids: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """Positions (ascending) of a seeded random ``limit`` of ``ids`` (all when there are no
    more): the ``limit`` smallest splitmix64 hashes of ``sample_id + seed``. The same ids and
    seed give the same pick, and a sample picked in a box is picked in every smaller box that
    holds it. (Not DuckDB's ``hash``: the database path draws other samples.)"""
    if len(ids) <= limit:
        return np.arange(len(ids), dtype=np.int64)
    z = np.asarray(ids).astype(np.uint64) + np.uint64(seed % 2**64)
    z += _GOLDEN  # splitmix64's finaliser: a bijection of uint64, so no ties
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z ^= z >> np.uint64(31)
    return np.sort(np.argpartition(z, limit - 1)[:limit])


def whole_column(db: RunDatabase, name: str, categories: list[str] | None = None) -> Any:
    """Every sample's ``name`` in ``sample_id`` order (the table's order), as a pandas Series;
    with ``categories`` (a text column's values), each value's index in them, -1 when missing
    or not among them, as int64: coded in DuckDB (at 1M samples, coding the text in pandas
    took 5 s)."""
    if categories is None:
        return db.fetch(f"SELECT {quote(name)} AS v FROM {{source}}")["v"]
    found = db.fetch(f"SELECT list_position(?::VARCHAR[], {quote(name)}) AS v FROM {{source}}", [categories])
    return found["v"].to_numpy(np.float64, na_value=0).astype(np.int64) - 1

"""Queries on the 2-D map (``map_x``, ``map_y``): the overview sample, viewports, shapes.

A run of millions of samples cannot be drawn whole in a browser, so the server sends a
density-aware **overview** (:func:`overview_ids`) and, when the page zooms in, every sample
of its **viewport** (:func:`in_box`). Box and lasso selections are resolved here over every
sample inside the shape (:func:`shape_where`), not only over the drawn ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from samplescope.store import layout
from samplescope.store.database import RunDatabase
from samplescope.store.query import quote
from samplescope.store.serving import Condition, where_sql

log = logging.getLogger(__name__)

#: the overview's grid: cells per side (each class in each cell is capped alone)
GRID = 128
#: share of each cell's cap kept for its highest-loss samples (the rest is a seeded random draw)
LOSS_SHARE = 0.25
_ON_MAP = '"map_x" IS NOT NULL AND "map_y" IS NOT NULL AND NOT isnan("map_x") AND NOT isnan("map_y")'


def bounds(db: RunDatabase) -> tuple[float, float, float, float]:
    """``(x0, x1, y0, y1)`` of every placed sample (0, 1, 0, 1 when none is)."""
    b = db.fetch(
        f'SELECT min("map_x") AS x0, max("map_x") AS x1, min("map_y") AS y0, max("map_y") AS y1 '
        f"FROM {{source}} WHERE {_ON_MAP}"
    ).iloc[0]
    if pd.isna(b["x0"]):
        return 0.0, 1.0, 0.0, 1.0
    return float(b["x0"]), float(b["x1"]), float(b["y0"]), float(b["y1"])


def _cells(db: RunDatabase, grid: int, group: str = '"label"') -> str:
    """SQL of (sample_id, cell, group, loss without NaN) for every placed sample."""
    x0, x1, y0, y1 = bounds(db)
    fx, fy = grid / ((x1 - x0) or 1.0), grid / ((y1 - y0) or 1.0)
    has_loss = "loss" in db.columns()
    loss = 'CASE WHEN isnan("loss") THEN NULL ELSE "loss" END' if has_loss else "NULL"
    label = group if "label" in db.columns() else "NULL"
    cx = f'least({grid - 1}, greatest(0, CAST(floor(("map_x" - {x0!r}) * {fx!r}) AS INTEGER)))'
    cy = f'least({grid - 1}, greatest(0, CAST(floor(("map_y" - {y0!r}) * {fy!r}) AS INTEGER)))'
    return (
        f'SELECT "sample_id", {cy} * {grid} + {cx} AS cell, {label} AS cls, {loss} AS l '
        f"FROM {{source}} WHERE {_ON_MAP}"
    )


#: above this many samples the page gets an overview and viewports, not every point (the
#: default of the server's ``map_full_max``) ...
FULL_MAX = 500_000
#: ... and the overview has at most this many (of its ``map_overview_points``)
OVERVIEW_POINTS = 250_000


def save_overview(db: RunDatabase, folder: Path, n: int, group: str, full_max: int,
                  points: int) -> dict[str, Any] | None:
    """Write the overview of a run of ``n`` samples (more than ``full_max``, the server's
    ``map_full_max``; at most ``points``, its ``map_overview_points``) to ``folder`` as
    :data:`~samplescope.store.layout.MAP_OVERVIEW` and return what run.json records of it (the
    budget and group it was made with); None, and no file, for a run small enough to send whole."""
    path = Path(folder) / layout.MAP_OVERVIEW
    if n <= full_max:
        path.unlink(missing_ok=True)  # stale: an earlier, larger analysis
        return None
    ids = overview_ids(db, points, group=group)
    np.save(path, ids, allow_pickle=False)
    return {"points": int(points), "group": group, "n": len(ids)}


def saved_overview(folder: Path, made: dict[str, Any] | None, n: int, points: int, group: str) -> np.ndarray | None:
    """The overview :func:`save_overview` wrote, when it was made with ``points`` and ``group``
    and its file holds sorted ids of this run's ``n`` samples; else None (the caller makes one)."""
    if not made or made.get("points") != points or made.get("group") != group:
        return None
    try:
        ids = np.load(Path(folder) / layout.MAP_OVERVIEW, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if (ids.ndim != 1 or ids.dtype.kind not in "iu" or len(ids) > points or len(ids) != made.get("n")
            or (len(ids) and (ids[0] < 0 or ids[-1] >= n or bool((np.diff(ids) <= 0).any())))):
        log.warning("%s does not hold this run's overview; making one", Path(folder) / layout.MAP_OVERVIEW)
        return None
    return ids.astype(np.int64)


def run_overview(folder: Path, made: dict[str, Any] | None, db: RunDatabase, n: int, points: int,
                 group: str) -> np.ndarray:
    """The run's overview of ``points`` ids: the one ``analyze`` saved (:func:`saved_overview`),
    else one made now (:func:`overview_ids`: saved with other settings, by an older analyze,
    or damaged)."""
    ids = saved_overview(folder, made, n, points, group)
    return ids if ids is not None else overview_ids(db, points, group=group)


def overview_ids(db: RunDatabase, budget: int, grid: int = GRID, seed: int = 0, group: str = '"label"') -> np.ndarray:
    """At most ``budget`` sample ids, sorted, that draw the map's shape faithfully.

    Every (grid cell, group) pair keeps up to the same cap ``c`` of its samples, the largest
    ``c`` whose total fits the budget (water-filling): sparse regions and rare groups keep
    every sample, dense ones are thinned. Of each pair's cap, ``LOSS_SHARE`` goes to its
    highest-loss samples (the errors people look for), the rest to a seeded random draw.
    ``group``: SQL naming each sample's group, the task's ``map_group_sql`` (the class; a
    regression target's decile).
    """
    cells = _cells(db, grid, group)
    counts = db.fetch(f"SELECT count(*) AS n FROM ({cells}) GROUP BY cell, cls")["n"].to_numpy(np.int64)
    if counts.sum() <= budget:
        cap = int(counts.max()) if counts.size else 0
    else:
        lo, hi = 0, int(counts.max())  # the largest cap whose total fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if np.minimum(counts, mid).sum() <= budget else (lo, mid - 1)
        cap = max(lo, 1)
    by_loss = int(np.ceil(cap * LOSS_SHARE))
    by_draw = cap - by_loss
    # The LIMIT only bites when there are more (cell, group) pairs than the budget (cap 1): then
    # the LOSS_SHARE of the budget goes to the highest-loss candidates over the whole map, the
    # rest to the seeded draw, so the errors are still kept before the rest.
    found = db.fetch(
        f"SELECT sample_id FROM (SELECT sample_id, l, "
        f"row_number() OVER (PARTITION BY cell, cls ORDER BY hash(sample_id + {int(seed)})) AS r_draw, "
        f"row_number() OVER (PARTITION BY cell, cls ORDER BY l DESC NULLS LAST, sample_id) AS r_loss "
        f"FROM ({cells})) WHERE r_draw <= ? OR r_loss <= ? "
        f"ORDER BY (row_number() OVER (ORDER BY l DESC NULLS LAST, sample_id) <= ?) DESC, "
        f"hash(sample_id + {int(seed)}) LIMIT ?",
        [by_draw, by_loss, int(np.ceil(budget * LOSS_SHARE)), int(budget)],
    )
    return np.sort(found["sample_id"].to_numpy(np.int64))


def box_conditions(x0: float, x1: float, y0: float, y1: float) -> list[Condition]:
    """The samples inside a rectangle of the map, edges included."""
    return [
        Condition("map_x", "between", (min(x0, x1), max(x0, x1))),
        Condition("map_y", "between", (min(y0, y1), max(y0, y1))),
    ]


def in_box(
    db: RunDatabase,
    box: tuple[float, float, float, float],
    conditions: Sequence[Condition],
    columns: Sequence[str],
    limit: int,
    seed: int = 0,
) -> tuple[pd.DataFrame, int]:
    """Rows (``sample_id``, ``map_x``, ``map_y`` and ``columns``) inside ``box`` (x0, x1, y0, y1)
    and how many there are; when more than ``limit``, a seeded random ``limit`` of them."""
    available = db.columns()
    clause, params = where_sql([*box_conditions(*box), *conditions], available)
    total = int(db.fetch(f"SELECT count(*) FROM {{source}} {clause}", params).iloc[0, 0])
    select = ", ".join(quote(c) for c in dict.fromkeys(["sample_id", "map_x", "map_y", *columns]))
    order = f'ORDER BY hash("sample_id" + {int(seed)}) LIMIT {int(limit)}' if total > limit else ""
    rows = db.fetch(f"SELECT {select} FROM {{source}} {clause} {order}", params)
    if order:
        rows = rows.sort_values("sample_id", kind="stable").reset_index(drop=True)
    return rows, total


def _double(value: float) -> str:
    """A float as a DuckDB DOUBLE literal, exactly (an exponent makes it DOUBLE, not DECIMAL)."""
    value = float(value)
    return f"{value:.17e}" if np.isfinite(value) else f"CAST('{value}' AS DOUBLE)"  # an edge's span may overflow


def polygon_sql(polygon: Sequence[tuple[float, float]]) -> str:
    """SQL true for the samples inside ``polygon`` by the even-odd rule (the page's lasso draws
    with the same rule), in float64: a row is inside when an odd number of the polygon's edges
    cross the horizontal ray to its left."""
    pts = np.asarray(polygon, dtype=np.float64)
    xa, ya = pts[:, 0], pts[:, 1]
    xb, yb = np.roll(xa, 1), np.roll(ya, 1)
    x, y = 'CAST("map_x" AS DOUBLE)', 'CAST("map_y" AS DOUBLE)'
    terms = [
        f"CAST((({_double(ya[i])} > {y}) <> ({_double(yb[i])} > {y})) AND {x} < "
        f"{_double(xb[i] - xa[i])} * ({y} - {_double(ya[i])}) / {_double(yb[i] - ya[i])} + {_double(xa[i])} "
        "AS INTEGER)"
        for i in range(len(pts))
        if ya[i] != yb[i]  # a horizontal edge crosses no ray
    ]
    return f"(({' + '.join(terms)}) % 2 = 1)" if terms else "false"


def shape_where(
    db: RunDatabase,
    conditions: Sequence[Condition],
    *,
    box: tuple[float, float, float, float] | None = None,
    polygon: Sequence[tuple[float, float]] | None = None,
) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause and parameters of the samples inside ``box`` (x0, x1, y0, y1, edges
    included) or ``polygon`` (its bounding box, then the even-odd rule) that match ``conditions``."""
    if (box is None) == (polygon is None):
        raise ValueError("shape_where(): give a box or a polygon")
    if polygon is not None:
        pts = np.asarray(polygon, dtype=np.float64)
        box = (pts[:, 0].min(), pts[:, 0].max(), pts[:, 1].min(), pts[:, 1].max())
    clause, params = where_sql([*box_conditions(*box), *conditions], db.columns())
    if polygon is not None:
        clause = f"{clause} AND {polygon_sql(polygon)}"
    return clause, params

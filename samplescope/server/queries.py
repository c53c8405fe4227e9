"""Request filters as store conditions, and the summary of a selection.

Filters follow datasette's habit: ``?label=3`` matches exactly, ``?loss__gte=1.5``
applies an operator. Operators: exact, not, gt, gte, lt, lte, in (comma list),
isnull (true/false). Class columns (label, prediction, nearest_centroid) take a
class index or name. Each becomes a :class:`samplescope.store.serving.Condition`, so
the filtering runs in DuckDB, never over a copy of the table here.

The map's own filters (the page's subset, value range and legend value: ``fcol``,
``fmin``, ``fmax``, ``ccol``, ``cval``) are :class:`MapFilter`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from samplescope.errors import ParameterError
from samplescope.server.models import BoxSelection, PolygonSelection
from samplescope.server.state import ServerState
from samplescope.store import map_queries, serving
from samplescope.store.serving import Condition

OPERATORS = ("exact", "not", "gt", "gte", "lt", "lte", "in", "isnull")
_OPS = {"exact": "==", "not": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def conditions_of(state: ServerState, filters: Iterable[tuple[str, str]]) -> list[Condition]:
    """``(key, value)`` query filters (see the module docstring) as store conditions."""
    out = []
    for key, value in filters:
        column, _, op = key.partition("__")
        op = op or "exact"
        if op not in OPERATORS:
            raise ParameterError(
                f"unknown filter operator {op!r} in {key!r}; use one of {', '.join(OPERATORS)}"
            )
        state.check_columns([column])
        if op == "isnull":
            out.append(Condition(column, "is null" if _parse_bool(key, value) else "is not null"))
        elif op == "in":
            wanted = [_parse(state, column, key, v) for v in value.split(",") if v.strip()]
            out.append(Condition(column, "in", wanted))
        else:
            if op in ("gt", "gte", "lt", "lte") and state.kinds[column] != "numeric":
                raise ParameterError(f"{key}: {op} needs a numeric column; {column} is not")
            out.append(Condition(column, _OPS[op], _parse(state, column, key, value)))
    return out


@dataclass(frozen=True)
class MapFilter:
    """What the page's map shows: a subset, a value range of a numeric column, a legend value."""

    subset: str | None = None
    fcol: str | None = None
    fmin: float | None = None
    fmax: float | None = None
    ccol: str | None = None
    cval: str | None = None

    def conditions(self, state: ServerState) -> list[Condition]:
        out = []
        subset = state.check_subset(self.subset)
        if subset is not None:
            out.append(Condition("subset", "==", subset))
        for name, v in (("fmin", self.fmin), ("fmax", self.fmax)):
            if v is not None and not math.isfinite(v):
                raise ParameterError(f"{name}={v!r} is not a finite number; give one, or leave it out")
        for name in (self.fcol, self.ccol):  # named columns are checked even when unused
            if name:
                state.check_columns([name])
        if self.fcol and state.kinds[self.fcol] != "numeric":
            raise ParameterError(f"fcol={self.fcol!r} is not numeric; a range needs a numeric column")
        if self.fcol and (self.fmin is not None or self.fmax is not None):
            lo = -math.inf if self.fmin is None else self.fmin
            hi = math.inf if self.fmax is None else self.fmax
            out.append(Condition(self.fcol, "between", (lo, hi)))
        if self.ccol and self.cval not in (None, ""):
            out.append(legend_condition(state, self.ccol, str(self.cval)))
        return out


def legend_condition(state: ServerState, column: str, value: str) -> Condition:
    """Samples whose ``column`` shows as ``value`` in the legend (a value not in the run
    matches nothing, as clicking a legend entry that has no samples would)."""
    if column in state.class_columns:
        index = state.find_class(value)
        return Condition(column, "false") if index is None else Condition(column, "==", index)
    if state.kinds[column] == "bool":
        if value not in ("true", "false"):
            return Condition(column, "false")
        return Condition(column, "==", value == "true")
    return Condition(column, "text ==", value)


def shape_where(state: ServerState, query: BoxSelection | PolygonSelection) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (and parameters) of every sample inside a box or lasso of the map
    that the map's filters keep, not only the drawn ones."""
    state.require_map()
    conditions = MapFilter(**query.filters.model_dump()).conditions(state)
    shape = {"box": tuple(query.box)} if isinstance(query, BoxSelection) else {"polygon": query.polygon}
    return map_queries.shape_where(state.run.db, conditions, **shape)


def selection_stats(state: ServerState, clause: str, params: list[Any]) -> dict[str, Any]:
    """Count, accuracy, mean loss, class mix, subsets and the highest-loss examples of the
    samples ``clause`` keeps, computed in DuckDB (``store.serving.selection_summary``)."""
    found = serving.selection_summary(state.run.db, clause, params, class_mix="label" in state.class_columns)
    found["class_mix"] = [
        {"class_index": c, "name": state.classes[c], "count": n, "errors": e} for c, n, e in found["class_mix"]
    ]
    return found


def _parse(state: ServerState, column: str, key: str, value: str) -> Any:
    kind = state.kinds[column]
    if column in state.class_columns:
        return state.class_index(value)
    if kind == "bool":
        return _parse_bool(key, value)
    if kind == "numeric":
        try:
            number = float(value)
        except ValueError:
            raise ParameterError(f"{key}={value!r}: {column} is numeric") from None
        if not math.isfinite(number):
            raise ParameterError(f"{key}={value!r}: give a finite number")
        return number
    if state.columns[column].upper() in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"):
        try:
            return int(value)
        except ValueError:
            raise ParameterError(f"{key}={value!r}: {column} holds integers") from None
    return value


def _parse_bool(key: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    raise ParameterError(f"{key}={value!r}: use true or false")

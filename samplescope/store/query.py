"""Filters, sort orders and pages over a run's sample columns, compiled to DuckDB SQL.

Callers describe *what* they want (``where={"label": 3, "loss": (1.0, None)}``,
``order_by="-loss"``); this module checks every column against the table and turns
it into SQL with bound parameters, so no value is ever spliced into a query.

``where`` takes, combined with AND:

- a dict ``{column: condition}``, where the condition is a scalar (equal), a list or
  set (one of), a ``(low, high)`` tuple (between, inclusive; ``None`` leaves a side
  open) or ``None`` (is null);
- a list of ``(column, op, value)`` triples or :class:`Filter`, ``op`` one of
  :data:`OPS`;
- from the Python API only, a SQL boolean expression over the columns (a string),
  which runs as written.

``order_by`` is a column name, ``"-name"`` for descending, or a list of them;
``sample_id`` breaks ties so every order is total and pages never overlap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from samplescope.errors import NotFoundError, ParameterError

Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in", "between", "is null", "is not null"]
OPS: tuple[str, ...] = ("==", "!=", "<", "<=", ">", ">=", "in", "not in", "between", "is null", "is not null")
_SQL = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
#: most values one ``in`` filter may list (the server's limits are lower)
MAX_IN = 100_000


@dataclass(frozen=True)
class Filter:
    column: str
    op: Op
    value: Any = None


Where = Mapping[str, Any] | Sequence[Filter | tuple[str, str, Any]] | str | None
OrderBy = str | Sequence[str] | None


def quote(name: str) -> str:
    """A column name as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def filters_of(where: Where) -> list[Filter] | str:
    """``where`` as a list of :class:`Filter` (or the SQL string, unchanged)."""
    if where is None:
        return []
    if isinstance(where, str):
        return where
    if isinstance(where, Mapping):
        out = []
        for column, cond in where.items():
            if cond is None:
                out.append(Filter(column, "is null"))
            elif isinstance(cond, tuple):
                if len(cond) != 2:
                    raise ParameterError(f"where[{column!r}]={cond!r}: a tuple means (low, high); give two values.")
                out.append(Filter(column, "between", cond))
            elif isinstance(cond, list | set | frozenset):
                out.append(Filter(column, "in", list(cond)))
            else:
                out.append(Filter(column, "==", cond))
        return out
    out = []
    for item in where:
        if isinstance(item, Filter):
            out.append(item)
            continue
        if not (isinstance(item, tuple | list) and len(item) in (2, 3)):
            raise ParameterError(f"where item {item!r} is not a (column, op, value) triple.")
        out.append(Filter(item[0], item[1], item[2] if len(item) == 3 else None))
    return out


def compile_where(where: Where, columns: Mapping[str, str]) -> tuple[str, list[Any]]:
    """SQL for ``WHERE`` (empty when there is no filter) and its parameters."""
    filters = filters_of(where)
    if isinstance(filters, str):
        return (f"WHERE ({filters})" if filters.strip() else ""), []
    parts, params = [], []
    for f in filters:
        _check_column(f.column, columns, "where")
        col = quote(f.column)
        if f.op in _SQL:
            if f.value is None:
                raise ParameterError(f"where {f.column} {f.op} None: compare with a value, or use 'is null'.")
            parts.append(f"{col} {_SQL[f.op]} ?")
            params.append(_plain(f.value))
        elif f.op in ("in", "not in"):
            values = list(f.value) if isinstance(f.value, list | tuple | set | frozenset) else None
            if values is None:
                raise ParameterError(f"where {f.column} {f.op} {f.value!r}: give a list of values.")
            if len(values) > MAX_IN:
                raise ParameterError(f"where {f.column} {f.op}: {len(values)} values; at most {MAX_IN}.")
            if not values:
                parts.append("FALSE" if f.op == "in" else "TRUE")
                continue
            parts.append(f"{col} {'IN' if f.op == 'in' else 'NOT IN'} ({', '.join('?' * len(values))})")
            params += [_plain(v) for v in values]
        elif f.op == "between":
            low, high = _pair(f)
            if low is not None:
                parts.append(f"{col} >= ?")
                params.append(_plain(low))
            if high is not None:
                parts.append(f"{col} <= ?")
                params.append(_plain(high))
        elif f.op in ("is null", "is not null"):
            parts.append(f"{col} IS {'NOT ' if f.op == 'is not null' else ''}NULL")
        else:
            raise ParameterError(f"where op {f.op!r} for column {f.column!r} is not one of {list(OPS)}.")
    return ("WHERE " + " AND ".join(parts)) if parts else "", params


def compile_order(order_by: OrderBy, columns: Mapping[str, str]) -> str:
    """SQL for ``ORDER BY``, always ending with ``sample_id`` so the order is total."""
    names = [order_by] if isinstance(order_by, str) else list(order_by or [])
    parts = []
    for name in names:
        desc = name.startswith("-")
        column = name[1:] if desc else name
        _check_column(column, columns, "order_by")
        parts.append(f"{quote(column)} {'DESC' if desc else 'ASC'} NULLS LAST")
    if not any(p.startswith('"sample_id"') for p in parts):
        parts.append('"sample_id" ASC')
    return "ORDER BY " + ", ".join(parts)


def compile_page(limit: int | None, offset: int) -> str:
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ParameterError(f"limit={limit!r}; give a whole number >= 0 (or None for every row).")
    if not isinstance(offset, int) or offset < 0:
        raise ParameterError(f"offset={offset!r}; give a whole number >= 0.")
    return (f"LIMIT {limit} " if limit is not None else "") + (f"OFFSET {offset}" if offset else "")


def _check_column(name: str, columns: Mapping[str, str], where: str) -> None:
    if name not in columns:
        raise NotFoundError(f"{where}: unknown column {name!r}; available columns: {sorted(columns)}.")


def _pair(f: Filter) -> tuple[Any, Any]:
    if not (isinstance(f.value, tuple | list) and len(f.value) == 2):
        raise ParameterError(f"where {f.column} between {f.value!r}: give (low, high).")
    return f.value[0], f.value[1]


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones (DuckDB binds those)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value

"""The reads behind the web server's routes, as DuckDB queries over a run's samples table.

The server holds no copy of the table: a page of rows, a count, the summary of a subset
or of a selection is one query here. Conditions are ``(column, op, value)`` triples
(:class:`Condition`), every value bound as a parameter; their meaning follows pandas on
the same table, so the routes can be tested against it:

- ``==``, ``<``, ``<=``, ``>``, ``>=``, ``between`` never match a missing value (NULL, or NaN
  in a float column; DuckDB orders NaN above every number, pandas leaves it out);
- ``!=`` matches missing values (``IS DISTINCT FROM``, as pandas' ``!=`` does);
- ``in`` takes a list, bound as one list parameter (100,000 ids bind in milliseconds, where
  as many ``?`` placeholders take seconds);
- ``is null`` / ``is not null`` count NaN as missing (pandas' ``isna``);
- ``text ==`` compares the value's text (``CAST(col AS VARCHAR)``), for legend categories;
- ``false`` matches nothing (a category that is not in the run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from samplescope.errors import ParameterError
from samplescope.store.database import RunDatabase
from samplescope.store.query import quote

FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
_CMP = {"==": "=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: Any = None


def missing_sql(column: str, dtype: str) -> str:
    """SQL true where ``column`` (of DuckDB type ``dtype``) holds no value: NULL, or NaN in a
    float column (pandas' ``isna``)."""
    col = quote(column)
    return f"({col} IS NULL OR isnan({col}))" if dtype.upper() in FLOAT_TYPES else f"({col} IS NULL)"


def where_sql(conditions: Sequence[Condition], columns: Mapping[str, str]) -> tuple[str, list[Any]]:
    """``WHERE ...`` (or "") and its parameters; see the module docstring for each op."""
    parts: list[str] = []
    params: list[Any] = []
    for c in conditions:
        if c.column not in columns:
            raise ParameterError(f"no column {c.column!r} in the samples table; GET /api/run lists them")
        col = quote(c.column)
        is_float = columns[c.column].upper() in FLOAT_TYPES
        number = f" AND NOT isnan({col})" if is_float else ""
        if c.op in _CMP:
            parts.append(f"({col} {_CMP[c.op]} ?{number})")
            params.append(_plain(c.value))
        elif c.op == "!=":
            parts.append(f"({col} IS DISTINCT FROM ?)")
            params.append(_plain(c.value))
        elif c.op == "between":
            low, high = c.value
            parts.append(f"({col} BETWEEN ? AND ?{number})")
            params += [_plain(low), _plain(high)]
        elif c.op == "in":
            parts.append(f"({col} IN (SELECT unnest(?)))")
            params.append([_plain(v) for v in c.value])
        elif c.op in ("is null", "is not null"):
            missing = missing_sql(c.column, columns[c.column])
            parts.append(missing if c.op == "is null" else f"(NOT coalesce({missing}, FALSE))")
        elif c.op == "text ==":
            parts.append(f"(CAST({col} AS VARCHAR) = ?)")
            params.append(str(c.value))
        elif c.op == "false":
            parts.append("FALSE")
        else:
            raise ParameterError(f"condition op {c.op!r} on {c.column!r} is not one the store knows")
    return ("WHERE " + " AND ".join(parts)) if parts else "", params


def order_sql(column: str | None, descending: bool, columns: Mapping[str, str]) -> str:
    """``ORDER BY``: missing values (NULL and NaN) last either way, ties by ``sample_id``."""
    if not column or column == "sample_id":
        return f"ORDER BY \"sample_id\" {'DESC' if descending and column else 'ASC'}"
    col = quote(column)
    if columns[column].upper() in FLOAT_TYPES:
        col = f"(CASE WHEN isnan({col}) THEN NULL ELSE {col} END)"
    return f"ORDER BY {col} {'DESC' if descending else 'ASC'} NULLS LAST, \"sample_id\" ASC"


def page(
    db: RunDatabase,
    columns: Sequence[str],
    conditions: Sequence[Condition],
    *,
    order: str | None = None,
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
    total: int | None = None,
) -> tuple[pd.DataFrame, int]:
    """One page of rows (``columns`` only) and how many rows match in all (``total``, when the
    caller knows it: the run's size for no conditions, one count query less).

    The page is found on ``sample_id`` and the sort key alone, then its rows are read: sorting
    every column of the table to keep 50 rows cost twice as much (70,000 rows, a random offset)."""
    available = db.columns()
    clause, params = where_sql(conditions, available)
    select = ", ".join(quote(c) for c in dict.fromkeys(["sample_id", *columns]))
    if total is None:
        total = int(db.fetch(f"SELECT count(*) AS n FROM {{source}} {clause}", params).iloc[0, 0])
    if limit == 0 or offset >= total:
        return db.fetch(f"SELECT {select} FROM {{source}} LIMIT 0"), total
    ordered = order_sql(order, descending, available)
    rows = db.fetch(
        f'SELECT {select} FROM {{source}} WHERE "sample_id" IN (SELECT "sample_id" FROM {{source}} '
        f"{clause} {ordered} LIMIT {int(limit)} OFFSET {int(offset)}) {ordered}",
        params,
    )
    return rows, total


def subset_summary(db: RunDatabase) -> pd.DataFrame:
    """Per subset, in sample-id order: count, and over labelled samples accuracy and mean loss."""
    return db.fetch(
        'SELECT "subset", count(*) AS count, '
        'avg(CAST("correct" AS DOUBLE)) FILTER (WHERE "label" IS NOT NULL) AS accuracy, '
        'avg("loss") FILTER (WHERE "label" IS NOT NULL AND NOT isnan("loss")) AS mean_loss, '
        'min("sample_id") AS first FROM {source} GROUP BY "subset" ORDER BY first'
    )


def distinct_counts(db: RunDatabase, names: Sequence[str], exact_below: int | None = None) -> dict[str, int]:
    """Distinct values per column, a missing value counting as one (pandas' ``nunique(dropna=False)``).

    With ``exact_below`` the count is exact only for columns that may have fewer values than
    that; the others (a HyperLogLog estimate of at least four times as many) get the estimate:
    at 10M rows an exact count took 0.8 s a float column, 20 s for a run's 29 columns, where
    the estimates of all 29 took 1.2 s."""
    if not names:
        return {}
    approx: dict[str, int] = {}
    if exact_below is not None:
        parts = [f'approx_count_distinct({quote(c)}) AS "{i}"' for i, c in enumerate(names)]
        found = db.fetch(f"SELECT {', '.join(parts)} FROM {{source}}").iloc[0]
        approx = {c: int(found[str(i)]) for i, c in enumerate(names) if int(found[str(i)]) >= 4 * exact_below}
    exact = [c for c in names if c not in approx]
    parts = [
        f'count(DISTINCT {quote(c)}) + CAST(count(*) > count({quote(c)}) AS INTEGER) AS "{i}"'
        for i, c in enumerate(exact)
    ]
    found = db.fetch(f"SELECT {', '.join(parts)} FROM {{source}}").iloc[0] if exact else {}
    counted = {c: int(found[str(i)]) for i, c in enumerate(exact)}
    return {c: counted[c] if c in counted else approx[c] for c in names}


def saved_distinct_counts(made: Any, names: Sequence[str], exact_below: int) -> dict[str, int] | None:
    """The counts ``analyze`` saved in run.json (``{"exact_below": ..., "counts": {...}}``) when
    they were made with this ``exact_below`` for exactly these columns, each a count >= 1 (an
    empty table: 0); else None, and the caller counts. run.json is data: checked, never trusted."""
    if not isinstance(made, dict) or made.get("exact_below") != exact_below:
        return None
    counts = made.get("counts")
    if not isinstance(counts, dict) or sorted(counts) != sorted(names):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()):
        return None
    return {c: counts[c] for c in names}


def distinct_values(db: RunDatabase, column: str) -> list[Any]:
    """The column's values, each once, sorted (missing left out)."""
    col = quote(column)
    found = db.fetch(f"SELECT DISTINCT {col} AS v FROM {{source}} WHERE {col} IS NOT NULL ORDER BY v")
    return found["v"].tolist()


def value_range(db: RunDatabase, column: str) -> tuple[float | None, float | None]:
    """``(min, max)`` of a numeric column, NaN and missing values left out."""
    col = quote(column)
    nan = f" WHERE NOT isnan({col})" if db.columns()[column].upper() in FLOAT_TYPES else ""
    found = db.fetch(f"SELECT min({col}) AS lo, max({col}) AS hi FROM {{source}}{nan}").iloc[0]
    return tuple(None if pd.isna(v) else float(v) for v in (found["lo"], found["hi"]))  # type: ignore[return-value]


def group_counts(db: RunDatabase, column: str, conditions: Sequence[Condition]) -> pd.DataFrame:
    """``value, n`` per value of ``column`` over the rows matching ``conditions``."""
    clause, params = where_sql(conditions, db.columns())
    col = quote(column)
    return db.fetch(f"SELECT {col} AS value, count(*) AS n FROM {{source}} {clause} GROUP BY ALL", params)


def selection_summary(
    db: RunDatabase, clause: str, params: list[Any], *, class_mix: bool, examples: int = 60
) -> dict[str, Any]:
    """Count, accuracy and mean loss over the labelled rows, the class mix (``class_mix``: one
    class index per sample in ``label``) as (class, count, errors), the subsets and the
    ``examples`` highest-loss ids of the rows that ``clause`` (a ``WHERE`` clause, or "")
    keeps: one grouped scan and one top-N, however many rows the selection holds.

    As pandas would: a row is labelled when its label is not missing, means skip missing
    values (None when nothing is left), a row is an error when ``correct`` is false, the mix
    is ordered by count (then class), the examples by loss (missing last, then id)."""
    types = db.columns()
    by_label = class_mix and "label" in types
    labelled = f"NOT {missing_sql('label', types['label'])}" if "label" in types else "true"
    loss = f'(CASE WHEN NOT {missing_sql("loss", types["loss"])} THEN CAST("loss" AS DOUBLE) END)' if "loss" in types else "NULL"
    right = 'CAST("correct" AS DOUBLE)' if "correct" in types else "NULL"
    wrong = 'NOT "correct"' if "correct" in types else "false"
    columns = [
        'GROUPING("subset") AS by_subset',
        'GROUPING("label") AS by_label, "label"' if by_label else "1 AS by_label",
        '"subset", count(*) AS n',
        f"avg({right}) FILTER (WHERE {labelled}) AS accuracy",
        f"avg({loss}) FILTER (WHERE {labelled}) AS mean_loss",
        f"count(*) FILTER (WHERE {labelled} AND {wrong}) AS errors",
    ]
    sets = ["()", '("subset")', *(['("label")'] if by_label else [])]
    grouped = db.fetch(
        f"SELECT {', '.join(columns)} FROM {{source}} {clause} GROUP BY GROUPING SETS ({', '.join(sets)})", params
    )
    whole = grouped[(grouped["by_subset"] == 1) & (grouped["by_label"] == 1)].iloc[0]
    subsets = grouped[grouped["by_subset"] == 0].sort_values(["n", "subset"], ascending=[False, True])
    mix = []
    if by_label:
        classes = grouped[(grouped["by_label"] == 0) & grouped["label"].notna()]
        classes = classes.sort_values(["n", "label"], ascending=[False, True])
        mix = [(int(c), int(n), int(e)) for c, n, e in zip(classes["label"], classes["n"], classes["errors"])]
    order = f"({loss} IS NULL), {loss} DESC, " if "loss" in types else ""
    top = db.fetch_numpy(
        f'SELECT "sample_id" FROM {{source}} {clause} ORDER BY {order}"sample_id" LIMIT {int(examples)}', params
    )
    return {
        "count": int(whole["n"]),
        "accuracy": None if pd.isna(whole["accuracy"]) else float(whole["accuracy"]),
        "mean_loss": None if pd.isna(whole["mean_loss"]) else float(whole["mean_loss"]),
        "class_mix": mix,
        "subsets": {str(k): int(v) for k, v in zip(subsets["subset"], subsets["n"])},
        "examples": [int(i) for i in top["sample_id"]],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value

"""Table rows as the JSON the API sends: NaN as null, floats to 6 decimals, class names beside
class indices.

Two ways to the same answer:

- :func:`records`, for a frame of rows (a table page, similars, a selection): pandas'
  ``to_json(orient="records", double_precision=6)`` read back;
- :func:`record`, for one row that DuckDB gave as plain Python values (``/api/samples/<id>``,
  asked for on every click): no DataFrame. Its floats go through :func:`json_double`, which
  does what pandas' JSON writer does to a double (its ``Buffer_AppendDoubleUnchecked``), so
  both give the same dict: tests/server/test_records.py compares them on a run's rows and on
  floats across the whole range, tests/store/test_rows.py on NULLs, NaN, infinities and -0.0.

:data:`PLAIN_TYPES` are the column types :func:`record` reads as pandas would; a table with
another type (a timestamp, a decimal, a list) goes through :func:`records`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

#: decimals of a float in the API's JSON (pandas' ``double_precision``)
DECIMALS = 6
#: DuckDB types whose Python value (``fetchone``) writes as pandas writes the column
PLAIN_TYPES = frozenset({
    "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "FLOAT", "DOUBLE", "REAL", "VARCHAR",
})  # fmt: skip
_SCALE = float(10**DECIMALS)
# pandas writes a double outside these bounds as "%.{DECIMALS}g"
_FIXED_MAX = 1e16 - 1
_FIXED_MIN = 1e-15


def records(frame: pd.DataFrame, classes: Sequence[str], class_columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of ``frame`` as JSON-ready dicts, a ``<column>_name`` beside each class column."""
    out = frame.copy()
    for col in class_columns:
        if col in out.columns:
            out[f"{col}_name"] = class_names(classes, out[col])
    return json.loads(out.to_json(orient="records", double_precision=DECIMALS))


def record(row: Mapping[str, Any], classes: Sequence[str], class_columns: Sequence[str]) -> dict[str, Any]:
    """One row of plain values (columns of :data:`PLAIN_TYPES`) as :func:`records` gives it."""
    out = {name: _plain(value) for name, value in row.items()}
    for col in class_columns:
        if col in out:
            out[f"{col}_name"] = _class_name(classes, out[col])
    return out


def class_names(classes: Sequence[str], values: pd.Series) -> list[str | None]:
    return [_class_name(classes, v) for v in values]


def _class_name(classes: Sequence[str], value: Any) -> str | None:
    if value is None or pd.isna(value) or not 0 <= int(value) < len(classes):
        return None
    return classes[int(value)]


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return json_double(value)
    return value


def json_double(value: float) -> float | None:
    """``value`` as pandas' JSON writer writes it with ``double_precision=6``, read back:
    None for NaN and infinities, ``%.6g`` beyond 1e16 - 1 and below 1e-15, else rounded to 6
    decimals by its own rule (half to odd on the last digit), trailing zeros left out."""
    if not math.isfinite(value):
        return None
    negative = value < 0
    v = -value if negative else value
    if v > _FIXED_MAX or (v != 0.0 and v < _FIXED_MIN):
        return float(f"{value:.{DECIMALS}g}")
    whole = int(v)
    scaled = (v - whole) * _SCALE
    frac = int(scaled)
    diff = scaled - frac
    if diff > 0.5 or (diff == 0.5 and (frac == 0 or frac & 1)):
        frac += 1
    if frac >= _SCALE:
        frac, whole = 0, whole + 1
    text = f"{whole}.{frac:0{DECIMALS}d}".rstrip("0") if frac else f"{whole}.0"
    return float(f"-{text}" if negative else text)

"""How the page codes each column of one run: its kind, its categories, its range.

One :class:`ColumnCoder` per run decides, for every column, whether the page treats it as a
quantity, a group or a yes/no (:func:`column_kind`), which names a group's codes index (class
names, subsets, or the distinct values as text) and a quantity's range over every sample; and
encodes values for the map payload (``server/encoding.encode_column``) against those, so the
whole map, its overview, a viewport and a legend agree on every code.

The server's state holds one (``ServerState.coder``), and so does ``analyze`` for a run large
enough for viewports: it saves the columns every viewport carries (``MAP_COLUMNS``) coded this
way beside the map index (``store/map_index.save_column``), so the server's compute worker
loads them at start-up rather than reading and coding 10M values a column (0.56 s at 10M,
which the first viewports waited for).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from samplescope.server import encoding
from samplescope.server.encoding import ColumnKind
from samplescope.store import map_index, serving
from samplescope.store.database import RunDatabase

#: Integer columns that name a class or a group, not a quantity.
CLASS_COLUMNS = ("label", "prediction", "nearest_centroid")
GROUP_COLUMNS = ("cluster", "subset")
#: Columns the map payload (and every viewport) always carries.
MAP_COLUMNS = ("label", "prediction", "loss", "subset", "correct")
NUMERIC_TYPES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "FLOAT", "DOUBLE", "REAL",
)  # fmt: skip
Encoded = tuple[np.ndarray, dict[str, Any]]


class ColumnCoder:
    """The coding of one run's columns: ``db`` its table, ``classes`` its class names, ``task``
    its task object (which says whether label and prediction are class indices), ``declared``
    the metadata kinds analysis recorded (a column of kind ``class`` is coded as a class),
    ``subsets`` its subsets in sample-id order."""

    def __init__(
        self, db: RunDatabase, classes: list[str], task: Any, declared: dict[str, str] | None, subsets: list[str],
    ) -> None:
        self.db = db
        self.classes = [str(c) for c in classes]
        self.subsets = [str(s) for s in subsets]
        self.columns: dict[str, str] = db.columns()  # name -> DuckDB type
        extra = tuple(c for c, k in (declared or {}).items() if k == "class" and c not in CLASS_COLUMNS)
        #: columns holding a class index: label and prediction only when the task has one class
        #: per sample, and the metadata declared (or recorded by analysis) as kind "class"
        self.class_columns: tuple[str, ...] = tuple(
            c for c in (*CLASS_COLUMNS, *extra) if c not in ("label", "prediction") or c in task.class_columns
        )
        self.kinds: dict[str, ColumnKind] = {
            c: column_kind(c, t, self.class_columns) for c, t in self.columns.items()
        }

    @functools.cached_property
    def map_columns(self) -> tuple[str, ...]:
        """The MAP_COLUMNS this run has."""
        return tuple(c for c in MAP_COLUMNS if c in self.columns)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one coder per run; a few entries
    def categories(self, name: str) -> list[str]:
        """The names of a categorical column's values: class names, subsets, or its distinct
        values as text, sorted."""
        if name in self.class_columns:
            return self.classes
        if name == "subset":
            return self.subsets
        if self.kinds[name] == "bool":
            return ["false", "true"]
        return [text(v) for v in serving.distinct_values(self.db, name)]

    @functools.lru_cache(maxsize=256)  # noqa: B019
    def numeric_range(self, name: str) -> dict[str, float | None]:
        """``min`` and ``max`` of a numeric column over every sample (NaN left out)."""
        lo, hi = serving.value_range(self.db, name)
        return {"min": lo, "max": hi}

    def encode(self, name: str, values: pd.Series) -> Encoded:
        """Values of a column coded against the whole column's categories (or range)."""
        kind = self.kinds[name]
        if kind != "categorical":
            arr, entry = encoding.encode_column(values, kind)
            if kind == "numeric":  # the range of the whole column, not of these rows
                entry = {**entry, **self.numeric_range(name)}
            return arr, entry
        cats = self.categories(name)
        if name in self.class_columns:
            return encoding.encode_column(values, "categorical", cats)
        codes = pd.Series(pd.Categorical(values.map(text, na_action="ignore"), categories=cats).codes)
        return encoding.encode_column(codes.where(codes >= 0), "categorical", cats)

    def whole(self, name: str) -> Encoded:
        """Every sample's ``name`` coded, in ``sample_id`` order (the table's): a text column is
        coded in DuckDB (at 1M samples, coding the text in pandas took 5 s)."""
        if self.kinds[name] == "categorical" and name not in self.class_columns and \
                self.columns[name].upper() == "VARCHAR":  # fmt: skip
            cats = self.categories(name)
            codes = map_index.whole_column(self.db, name, cats)
            return encoding.encode_column(pd.Series(codes).where(codes >= 0), "categorical", cats)
        return self.encode(name, map_index.whole_column(self.db, name))


def text(value: Any) -> str:
    """A category's name: the value as text (``3``, not ``3.0``, for whole numbers)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def column_kind(name: str, dtype: str, class_columns: tuple[str, ...] = CLASS_COLUMNS) -> ColumnKind:
    """How the page should treat a column of DuckDB type ``dtype``: a quantity, a group or a yes/no."""
    if dtype.upper() == "BOOLEAN":
        return "bool"
    if name in class_columns or name in GROUP_COLUMNS:
        return "categorical"
    if dtype.upper() in NUMERIC_TYPES or dtype.upper().startswith("DECIMAL"):
        return "numeric"
    return "categorical"

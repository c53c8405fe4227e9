"""Filtering, sorting and summarising the in-memory samples table.

Filters follow datasette's habit: ``?label=3`` matches exactly, ``?loss__gte=1.5``
applies an operator. Operators: exact, not, gt, gte, lt, lte, in (comma list),
isnull (true/false). Class columns (label, prediction, nearest_centroid) take a
class index or name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from samplescope.errors import ParameterError
from samplescope.server.state import CLASS_COLUMNS, ServerState

OPERATORS = ("exact", "not", "gt", "gte", "lt", "lte", "in", "isnull")


def apply_filters(
    state: ServerState, frame: pd.DataFrame, filters: Iterable[tuple[str, str]]
) -> pd.DataFrame:
    """Keep the rows matching every ``(key, value)`` filter (see the module docstring)."""
    mask = np.ones(len(frame), dtype=bool)
    for key, value in filters:
        column, _, op = key.partition("__")
        op = op or "exact"
        if op not in OPERATORS:
            raise ParameterError(
                f"unknown filter operator {op!r} in {key!r}; use one of {', '.join(OPERATORS)}"
            )
        state.check_columns([column])
        values = frame[column]
        if op == "isnull":
            mask &= values.isna().to_numpy() == _parse_bool(key, value)
            continue
        if op == "in":
            wanted = [_parse(state, column, key, v) for v in value.split(",") if v.strip()]
            mask &= values.isin(wanted).to_numpy()
            continue
        v = _parse(state, column, key, value)
        if op == "exact":
            mask &= (values == v).to_numpy()
        elif op == "not":
            mask &= (values != v).to_numpy()
        else:
            if state.kinds[column] != "numeric":
                raise ParameterError(f"{key}: {op} needs a numeric column; {column} is not")
            cmp = {"gt": values.gt, "gte": values.ge, "lt": values.lt, "lte": values.le}[op]
            mask &= cmp(v).fillna(False).to_numpy(dtype=bool)
    return frame[mask]


def sort_frame(
    state: ServerState, frame: pd.DataFrame, sort: str | None, descending: bool
) -> pd.DataFrame:
    if not sort:
        return frame
    state.check_columns([sort])
    return frame.sort_values(
        [sort, "sample_id"], ascending=[not descending, True], na_position="last", kind="stable"
    )


def select_columns(state: ServerState, frame: pd.DataFrame, extra: Sequence[str]) -> pd.DataFrame:
    if "*" in extra:
        return frame
    base = [c for c in state.row_columns if c in frame.columns]
    wanted = dict.fromkeys(state.check_columns(extra))  # a column named twice is sent once
    return frame[base + [c for c in wanted if c not in base]]


def selection_stats(state: ServerState, sample_ids: Sequence[int]) -> dict[str, Any]:
    """Count, accuracy, mean loss and class mix of a set of samples."""
    rows = state.frame.iloc[np.unique(state.rows_of(sample_ids))] if sample_ids else state.frame[:0]
    labelled = rows[rows["label"].notna()] if "label" in rows else rows
    correct = labelled["correct"].astype(float) if "correct" in labelled else pd.Series(dtype=float)
    mix = []
    if len(labelled):
        counts = labelled.groupby(labelled["label"].astype(int)).agg(
            count=("sample_id", "size"), errors=("correct", lambda s: int((~s.astype(bool)).sum()))
        )
        mix = [
            {
                "class_index": int(c),
                "name": state.classes[int(c)],
                "count": int(n),
                "errors": int(e),
            }
            for c, n, e in counts.sort_values("count", ascending=False).itertuples()
        ]
    top = rows.sort_values(["loss", "sample_id"], ascending=[False, True]).head(60)
    return {
        "count": len(rows),
        "accuracy": _mean(correct),
        "mean_loss": _mean(labelled["loss"]) if "loss" in labelled else None,
        "class_mix": mix,
        "subsets": {str(k): int(v) for k, v in rows["subset"].value_counts().items()},
        "examples": [int(i) for i in top["sample_id"]],
    }


def _mean(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) and values.notna().any() else None


def _parse(state: ServerState, column: str, key: str, value: str) -> Any:
    kind = state.kinds[column]
    if column in CLASS_COLUMNS:
        return state.class_index(value)
    if kind == "bool":
        return _parse_bool(key, value)
    if kind == "numeric":
        try:
            return float(value)
        except ValueError:
            raise ParameterError(f"{key}={value!r}: {column} is numeric") from None
    dtype = state.frame[column].dtype
    if pd.api.types.is_integer_dtype(dtype):
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

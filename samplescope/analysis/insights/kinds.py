"""What each metadata column is, so that every finder, the page and the report read it alike.

A column's kind (``samplescope.integration.core.METADATA_KINDS``) is declared by the
integration (``@x.metadata(..., kind=...)``) or inferred here:

- ``category``: strings and booleans (unordered values);
- ``ordinal``: integer columns with at most ``MAX_ORDINAL`` distinct values (a rank, a
  count); ``samplescope check`` asks the author to declare them, since a few-valued
  integer may as well be a category or a class;
- ``number``: every other numeric column;
- ``class``: only when declared: a class index, shown and reported by class name.

A column that is a **function of the label** (declared by giving it kind ``class`` and
the name ``label``, or detected: every label value maps to one value of the column, as
MNIST's ``even_odd`` and ``circle``) says which class a sample is, never why the model
fails on it: finders never use it to explain anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MAX_ORDINAL", "declared_column_kinds", "infer_kind", "label_functions", "resolve_kinds"]

MAX_ORDINAL = 10  # an integer column with at most this many values is ordinal, unless declared


def infer_kind(series: pd.Series) -> str:
    """The kind of an undeclared column, from its values."""
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "category"
    if pd.api.types.is_integer_dtype(series) and series.nunique(dropna=True) <= MAX_ORDINAL:
        return "ordinal"
    return "number"


def label_functions(samples: pd.DataFrame, columns: list[str], labels: np.ndarray) -> list[str]:
    """Columns whose value is fully determined by the label, over the labelled rows.

    ``labels`` are class indices (-1: unlabelled). A constant column is determined by
    anything and is listed too: it cannot explain a difference either.
    """
    lab = np.asarray(labels) >= 0
    if not lab.any():
        return []
    y = np.asarray(labels)[lab].astype(np.int64)
    n_labels = len(np.unique(y))
    out = []
    for col in columns:
        codes, uniques = pd.factorize(samples[col].to_numpy()[lab], use_na_sentinel=False)
        if len(uniques) <= 1:
            out.append(col)
            continue
        pairs = y * (len(uniques) + 1) + codes
        if len(np.unique(pairs)) == n_labels:  # one value per label
            out.append(col)
    return out


def declared_column_kinds(integration: Any) -> dict[str, str]:
    """The integration's declared kinds by column.

    A kind declared for a function that returns several columns (``kind="number"`` on a
    dict-returning function) is expanded to its columns by calling it on one sample;
    kinds declared per column win over the function's.
    """
    declared: dict[str, str] = dict(getattr(integration, "metadata_kinds", {}) or {})
    fns = getattr(integration, "metadata_fns", {}) or {}
    out = {k: v for k, v in declared.items() if k not in fns}
    for name, kind in declared.items():
        fn = fns.get(name)
        if fn is None:
            continue
        subset = integration.subset_names[0]
        arg = integration.batch(subset, [0]) if fn.batched else integration.sample(subset, 0)
        value = fn.fn(arg)
        for column in value if isinstance(value, dict) else [name]:
            out.setdefault(str(column), kind)
    return out


def resolve_kinds(
    samples: pd.DataFrame,
    columns: list[str],
    declared: dict[str, str] | None = None,
) -> dict[str, str]:
    """``{column: kind}`` for ``columns``: the declared kind, else :func:`infer_kind`."""
    declared = declared or {}
    return {c: declared.get(c) or infer_kind(samples[c]) for c in columns}

"""Binned and grouped aggregates of a run's samples, computed in DuckDB.

The same answer as :func:`samplescope.analysis.metrics.aggregate` gives for a DataFrame
(the reference it is tested against), without loading the rows: the kind of ``x`` and
the limits come from one count, the bin edges from one quantile (or min/max) query, and
the groups from one ``GROUP BY`` whose answer has at most groups x bins rows.

    frame = aggregate(run.db, "confidence", y="correct", by="label", subset="validation")

Bins: numeric ``x`` is cut at its quantiles (``quantile``, ties merged) or at equal widths
(``uniform``); bin ``i`` is ``[x_lo, x_hi)``, the last ``[x_lo, x_hi]``, as numpy's
``searchsorted(edges, x, "right") - 1`` places them. A row joins its bin by an ASOF join
on the bin's lower edge (a CASE over the edges up to 64 bins). Missing
values: a NULL or NaN ``x`` is left out, a NULL or NaN ``y`` is left out of the mean and
standard deviation but counted, and NULL and NaN of ``by`` are one group (pandas'
``dropna=False``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from samplescope.errors import NotFoundError, ParameterError, SamplescopeError
from samplescope.store.query import Where, quote
from samplescope.store.serving import FLOAT_TYPES, missing_sql

if TYPE_CHECKING:
    from samplescope.store.database import RunDatabase

_INTEGER = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "UHUGEINT")  # fmt: skip
#: up to this many bins a row finds its bin by a CASE over the edges (10M rows, 20 bins:
#: 0.10 s against 0.26 s for the ASOF join, whose cost does not grow with the bins)
_CASE_BINS = 64


def _is_integer(dtype: str) -> bool:
    return dtype.upper() in _INTEGER


def _is_float(dtype: str) -> bool:
    return dtype.upper() in FLOAT_TYPES or dtype.upper().startswith("DECIMAL")


def _value(name: str, dtype: str) -> str:
    """Column ``name`` with NaN read as NULL (so one missing value, one group)."""
    q = quote(name)
    return f"(CASE WHEN isnan({q}) THEN NULL ELSE {q} END)" if dtype.upper() in FLOAT_TYPES else q


def aggregate(
    db: RunDatabase,
    x: str,
    y: str = "loss",
    by: str | None = None,
    *,
    subset: str | None = None,
    where: Where = None,
    bins: int = 10,
    binning: Literal["quantile", "uniform"] = "quantile",
    max_bins: int,
    max_groups: int,
    max_values: int,
) -> pd.DataFrame:
    """``y`` summarised over bins (or values) of ``x``, optionally per ``by``, over the rows of
    ``subset`` that match ``where``. The columns, ``attrs`` and limits (ParameterError naming
    the limit) are those of :func:`samplescope.analysis.metrics.aggregate`."""
    if binning not in ("quantile", "uniform"):
        raise SamplescopeError(f"binning={binning!r} is unknown; use 'quantile' or 'uniform'")
    if not 1 <= bins <= max_bins:
        raise ParameterError(f"bins={bins} is out of range; use 1 to {max_bins:,} (max_bins)")
    types = db.columns()
    count_only = y == "count" and "count" not in types
    for name, role in ((x, "x"), (None if count_only else y, "y"), (by, "by")):
        if name is not None and name not in types:
            raise NotFoundError(
                f"{role} column {name!r} is not in the table; available columns: {', '.join(types)}"
            )
    if not count_only and not (_is_integer(types[y]) or _is_float(types[y]) or types[y].upper() == "BOOLEAN"):
        raise SamplescopeError(f"y column {y!r} is {types[y]}, not numeric; pick a numeric one")
    clause, params = db.clause(where, subset)
    rows = f"(SELECT * FROM {{source}} {clause})"
    xt = types[x]
    numeric = _is_integer(xt) or _is_float(xt)

    # one scan for what decides the answer's shape: the distinct values of x (grouped by
    # value when not numeric, or integer with at most `bins` values) and of by, and for a
    # float x its bin edges
    facts = []
    if not _is_float(xt):
        facts.append(f"count(DISTINCT {quote(x)}) AS x_values")
    if by is not None:
        facts.append(f"count(DISTINCT {_value(by, types[by])}) + max(CAST({missing_sql(by, types[by])} AS INTEGER)) "
                     "AS by_values")  # fmt: skip
    xd = f"(CASE WHEN {missing_sql(x, xt)} THEN NULL ELSE CAST({quote(x)} AS DOUBLE) END)"
    qs = ", ".join(repr(float(q)) for q in np.linspace(0.0, 1.0, bins + 1))
    edge_facts = [f"quantile_cont({xd}, [{qs}]) AS q"] if binning == "quantile" else [f"min({xd}) AS lo, max({xd}) AS hi"]
    if _is_float(xt):  # binned whatever its values: the edges in the same scan
        facts += edge_facts
    found = db.fetch(f"SELECT {', '.join(facts)} FROM {rows}", params).iloc[0] if facts else {}
    if by is not None and int(found["by_values"] or 0) > max_groups:
        raise ParameterError(
            f"by={by!r} has {int(found['by_values']):,} distinct values; at most {max_groups:,} series are "
            f"allowed (max_groups); split by a column with fewer values (a class or a cluster)"
        )
    n_values = int(found["x_values"] or 0) if "x_values" in found else None
    categorical = not numeric or (_is_integer(xt) and n_values <= bins)

    group = [] if by is None else [by]
    keys = [f"{_value(by, types[by])} AS {quote(by)}"] if by is not None else []
    order = [f"{quote(by)} ASC NULLS LAST"] if by is not None else []
    yv = "NULL" if count_only else f"CAST({_value(y, types[y])} AS DOUBLE)"
    stats = "count(*) AS count" + ("" if count_only else ", avg(__y) AS mean, stddev_samp(__y) AS std")

    if categorical:
        if n_values > max_values:
            raise ParameterError(
                f"x={x!r} is grouped by value and has {n_values:,} distinct values; at most "
                f"{max_values:,} are allowed (max_values); pick a numeric x, which is binned"
            )
        sql = (
            f"SELECT {', '.join([*keys, f'{quote(x)} AS x_value', stats])} "
            f"FROM (SELECT *, {yv} AS __y FROM {rows}) WHERE NOT {missing_sql(x, xt)} "
            f"GROUP BY ALL ORDER BY {', '.join([*order, 'x_value ASC'])}"
        )
        out = db.fetch(sql, params)
        out["count"] = out["count"].astype(np.int64)
        return _finish(out, x, y, by, "categorical", None)

    if not _is_float(xt):  # an integer x with more than `bins` values
        found = db.fetch(f"SELECT {', '.join(edge_facts)} FROM {rows}", params).iloc[0]
    if binning == "quantile":
        edges = None if found["q"] is None or found["q"] is pd.NA else np.asarray(found["q"], dtype=np.float64)
    else:
        edges = None if pd.isna(found["lo"]) else np.linspace(float(found["lo"]), float(found["hi"]), bins + 1)
    if edges is None:
        raise SamplescopeError(f"x column {x!r} has no non-NaN values to bin")
    edges = np.unique(edges)  # tied quantiles collapse into one bin
    if len(edges) == 1:  # every value equal: one bin [v, v]
        edges = np.repeat(edges, 2)
    n_bins = len(edges) - 1
    if n_bins <= _CASE_BINS:  # a row's bin: the inner edges it is at or past
        bin_of = " ".join(f"WHEN __x < {float(e)!r} THEN {i}" for i, e in enumerate(edges[1:-1]))
        bin_of = f"CASE {bin_of} ELSE {n_bins - 1} END" if n_bins > 1 else "0"
        sql = (
            f"SELECT {', '.join([*keys, f'{bin_of} AS bin', stats])} "
            f"FROM (SELECT *, {xd} AS __x, {yv} AS __y FROM {rows}) WHERE __x IS NOT NULL "
            f"GROUP BY ALL ORDER BY {', '.join([*order, 'bin ASC'])}"
        )
    else:  # many bins: each row joins the bin of the greatest lower edge at or below it
        lows = ", ".join(f"({i}, {float(e)!r})" for i, e in enumerate(edges[:-1]))
        sql = (
            f"SELECT {', '.join([*keys, 'b.bin AS bin', stats])} "
            f"FROM (SELECT *, {xd} AS __x, {yv} AS __y FROM {rows}) AS r "
            f"ASOF JOIN (SELECT * FROM (VALUES {lows}) AS t(bin, lo)) AS b ON r.__x >= b.lo "
            f"GROUP BY ALL ORDER BY {', '.join([*order, 'bin ASC'])}"
        )
    got = db.fetch(sql, params)
    # every bin present (count 0 when empty), for every group that has rows
    full = pd.DataFrame({"bin": np.arange(n_bins, dtype=np.int64)})
    if by is not None:
        values = got[[by]].drop_duplicates()
        full = values.merge(full, how="cross")
    got["bin"] = got["bin"].astype(np.int64)
    out = full.merge(got, on=[*group, "bin"], how="left")
    out["count"] = out["count"].fillna(0).astype(np.int64)
    lo, hi = edges[:-1][out["bin"]], edges[1:][out["bin"]]
    out.insert(len(group) + 1, "x_lo", lo)
    out.insert(len(group) + 2, "x_hi", hi)
    out.insert(len(group) + 3, "x_mid", (lo + hi) / 2)
    return _finish(out, x, y, by, "binned", binning)


def _finish(out: pd.DataFrame, x: str, y: str, by: str | None, kind: str, binning: str | None) -> pd.DataFrame:
    out = out.reset_index(drop=True)
    for name in ("mean", "std"):
        if name in out.columns:
            out[name] = out[name].astype(np.float64)
    out.attrs.update(x=x, y=y, by=by, kind=kind, binning=binning)
    return out

"""What distinguishes a slice of samples from comparable ones, and what to do about it.

``describe_slice(ctx, mask)`` compares the slice's metadata with **the other samples of
the same classes** (classification): samples outside the slice are weighted so their
class mix equals the slice's, so a cluster of mostly 4s is compared with the other 4s,
and a column that only says which class a sample is (a function of the label) never
comes up. Per kind (:mod:`.kinds`):

- ``number``: Cohen's d, the difference of (weighted) means over the pooled standard
  deviation; the slice's side of the reference's median gives a threshold;
- ``ordinal``: the cut ``column >= t`` (or ``<= t``) with the largest Cohen's h;
- ``category`` / ``class``: the value whose share differs most (Cohen's h), a class
  value named by its class name.

Columns are ranked by how *specific* the difference is to the slice: its effect minus
the effect of the same condition between all errors and the correct samples of their
classes (when both point the same way). Every failure is far from its class's mean
image, so ``dist_to_gt_centroid`` says little about one slice in particular; thick
strokes set thickened 7s apart but not failures in general. A column that correlates
(|r| >= 0.8) with one already chosen is skipped: one story, one column.

``action(...)`` is what an insight tells its reader to do, with a population test in
the form of a ``samplescope test`` check (``samplescope/checks.py``), so that
``samplescope test RUN --suggest`` can gate the next model on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from samplescope.analysis.insights.base import InsightContext, pct

__all__ = ["action", "class_population", "describe_slice", "population_test", "reference_weights"]


def reference_weights(ctx: InsightContext, inside: np.ndarray) -> tuple[np.ndarray, str]:
    """Weights of the rows outside ``inside`` (labelled rows only) that give them the
    slice's class mix, and how to name that reference ("other 4s", "other samples of
    classes 4 and 9"); without classification every labelled outside row weighs 1."""
    lab = ctx.labelled
    out = ~inside & lab
    w = out.astype(np.float64)
    if not ctx.is_classification:
        return w, "the other samples"
    y_in = ctx.labels[inside & lab]
    if len(y_in) == 0:
        return w, "the other samples"
    c = max(len(ctx.class_names), int(ctx.labels.max()) + 1)
    share_in = np.bincount(y_in, minlength=c) / len(y_in)
    n_out = np.bincount(ctx.labels[out], minlength=c).astype(np.float64)
    ratio = np.divide(share_in, n_out, out=np.zeros(c), where=n_out > 0)
    w = np.where(out, ratio[np.maximum(ctx.labels, 0)], 0.0)
    top = np.argsort(-share_in, kind="stable")
    if share_in[top[0]] >= 0.8:
        name = f"the other {ctx.class_name(top[0])}s"
    else:
        main = [ctx.class_name(j) for j in top[:3] if share_in[j] >= 0.1]
        name = "the other samples of classes " + " and ".join(main) + " (same class mix)"
    return w, name


def describe_slice(
    ctx: InsightContext, mask: np.ndarray, min_effect: float = 0.5, top: int = 2
) -> list[dict[str, Any]]:
    """The explaining columns that best separate ``mask`` from comparable samples.

    Returns up to ``top`` dicts (largest |effect| first, |effect| >= ``min_effect``) with
    column, kind, effect, inside, outside, reference, a ``where`` condition for a
    population test and a text ``phrase``.
    """
    inside = np.asarray(mask, bool) & ctx.labelled
    if inside.sum() < 2:
        return []
    w, reference = reference_weights(ctx, inside)
    if w.sum() <= 0:
        return []
    errors = ctx.errors
    w_err, _ = reference_weights(ctx, errors)  # correct samples, weighted to the errors' classes
    found = []
    for col in ctx.explaining_columns:
        kind = ctx.kind_of(col)
        values = ctx.samples[col].to_numpy()
        if kind == "number":
            item = _numeric(ctx, col, values, inside, w)
        elif kind == "ordinal":
            item = _ordinal(ctx, col, values, inside, w)
        else:
            item = _category(ctx, col, values, inside, w)
        hit = item.pop("_hit", None) if item is not None else None
        if item is None or abs(item["effect"]) < min_effect:
            continue
        # specificity: how far the same condition sets *any* error apart from correct samples
        # of its classes; a column every failure shares (distance to the class's mean image)
        # says little about this slice in particular
        generic = 0.0
        if errors.any() and w_err.sum() > 0:
            if hit is None:
                g = _numeric(ctx, col, values, errors, w_err)
                generic = g["effect"] if g else 0.0
            else:
                generic = _share(hit, errors, w_err)[2]
        same_way = np.sign(generic) == np.sign(item["effect"])
        item["generic_effect"] = float(generic)
        item["specific_effect"] = float(abs(item["effect"]) - (abs(generic) if same_way else 0.0))
        item["reference"] = reference
        found.append(item)
    found.sort(key=lambda d: -d["specific_effect"])
    chosen: list[dict[str, Any]] = []
    for item in found:  # one column per story: skip one that moves with a chosen one
        if len(chosen) >= top:
            break
        if any(_redundant(ctx, item["column"], c["column"], inside | (w > 0)) for c in chosen):
            continue
        chosen.append(item)
    return chosen


def _redundant(ctx: InsightContext, a: str, b: str, rows: np.ndarray, limit: float = 0.8) -> bool:
    """Two numeric (or ordinal) columns whose values correlate (|Pearson r| >= ``limit``) here."""
    if {ctx.kind_of(a), ctx.kind_of(b)} - {"number", "ordinal"}:
        return False
    x = ctx.samples[a].to_numpy(np.float64)[rows]
    y = ctx.samples[b].to_numpy(np.float64)[rows]
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return False
    return abs(float(np.corrcoef(x[ok], y[ok])[0, 1])) >= limit


def _weighted(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    total = w.sum()
    mean = float((w * x).sum() / total)
    var = float((w * (x - mean) ** 2).sum() / total)
    return mean, var


def _numeric(ctx: InsightContext, col: str, values: np.ndarray, inside: np.ndarray,
             w: np.ndarray) -> dict[str, Any] | None:
    x = values.astype(np.float64)
    ok = np.isfinite(x)
    a, wa = x[inside & ok], np.ones(int((inside & ok).sum()))
    ref = ok & (w > 0)
    b, wb = x[ref], w[ref]
    if len(a) < 2 or wb.sum() <= 0:
        return None
    ma, va = _weighted(a, wa)
    mb, vb = _weighted(b, wb)
    pooled = np.sqrt((va + vb) / 2)
    if not pooled > 0:
        return None
    d = (ma - mb) / pooled
    # a threshold a population test can use: the slice's lower (upper) quartile
    cut = float(np.quantile(a, 0.25 if d > 0 else 0.75))
    where = {col: {"min": round(cut, 6)}} if d > 0 else {col: {"max": round(cut, 6)}}
    phrase = f"{'higher' if d > 0 else 'lower'} {col} (mean {ma:.3g} vs {mb:.3g})"
    slice_text = f"{col} {'>=' if d > 0 else '<='} {cut:.3g}"
    return {"column": col, "kind": "number", "effect": float(d), "inside": ma, "outside": mb,
            "where": where, "slice": slice_text, "phrase": phrase}


def _share(hit: np.ndarray, inside: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    p_in = float(hit[inside].mean())
    p_out = float((w * hit).sum() / w.sum())
    h = 2 * np.arcsin(np.sqrt(p_in)) - 2 * np.arcsin(np.sqrt(p_out))
    return p_in, p_out, float(h)


def _ordinal(ctx: InsightContext, col: str, values: np.ndarray, inside: np.ndarray,
             w: np.ndarray) -> dict[str, Any] | None:
    x = values.astype(np.float64)
    levels = np.unique(x[np.isfinite(x)])
    best = None
    for t in levels[1:]:
        p_in, p_out, h = _share(x >= t, inside, w)
        if best is None or abs(h) > abs(best[3]):
            best = (t, p_in, p_out, h)
    if best is None:
        return None
    t, p_in, p_out, h = best
    t_name = ctx.value_name(col, int(t) if float(t).is_integer() else t)
    phrase = f"{col} >= {t_name} {'more' if h > 0 else 'less'} often ({pct(p_in)} vs {pct(p_out)})"
    below = float(levels[levels < t].max())
    where = {col: {"min": float(t)}} if h > 0 else {col: {"max": below}}
    slice_text = f"{col} >= {t_name}" if h > 0 else f"{col} < {t_name}"
    return {"column": col, "kind": "ordinal", "effect": h, "inside": p_in, "outside": p_out,
            "value": f">= {t_name}", "where": where, "slice": slice_text, "phrase": phrase,
            "_hit": x >= t}


def _category_codes(ctx: InsightContext, col: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes (N,) int32, names (U,) str sorted, first (U,) row of each) of a column's values by
    their text, once per context: every slice the finders describe reads the same column (at 2M
    rows, turning the column into text and sorting it again for each slice took 11% of ``analyze``)."""

    def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)  # hashing, no sort of N values
        text = np.asarray([str(u) for u in uniques]) if len(uniques) else np.empty(0, str)
        names, merged = np.unique(text, return_inverse=True)  # values of one text (1 and "1") are one
        codes = merged.astype(np.int32)[codes] if len(uniques) else codes.astype(np.int32)
        first = np.full(len(names), len(codes), np.int64)
        np.minimum.at(first, codes, np.arange(len(codes)))
        return codes, names, first

    return ctx._get(f"category_codes:{col}", make)


def _category(ctx: InsightContext, col: str, values: np.ndarray, inside: np.ndarray,
              w: np.ndarray) -> dict[str, Any] | None:
    codes, names, first = _category_codes(ctx, col, values)
    if len(names) > 50:
        return None  # ids, file names: nothing to summarise
    counts = np.bincount(codes[inside], minlength=len(names))
    present = np.flatnonzero(counts)  # in text order, as np.unique of the slice's texts gives them
    best = None
    for code in present[np.argsort(-counts[present])][:20]:
        p_in, p_out, h = _share(codes == code, inside, w)
        if best is None or abs(h) > abs(best[3]):
            best = (code, p_in, p_out, h)
    if best is None:
        return None
    code, p_in, p_out, h = best
    cat, hit = names[code], codes == code
    raw = values[first[code]]
    if ctx.kind_of(col) == "class":
        what = f"{col} = {ctx.value_name(col, raw)}"
    elif isinstance(raw, (bool, np.bool_)):
        what = f"{col} {str(bool(raw)).lower()}"
    else:
        what = f"{col} = {cat}"
    phrase = f"{what} {'more' if h > 0 else 'less'} often ({pct(p_in)} vs {pct(p_out)})"
    value = raw.item() if isinstance(raw, np.generic) else raw
    if h > 0:
        slice_text, where = what.replace(" true", " = true").replace(" false", " = false"), {col: value}
    else:  # "less often": the slice is every other value
        rest = first[np.arange(len(names)) != code]  # a row of each other value, in text order
        others = [v.item() if isinstance(v, np.generic) else v for v in values[rest]] if len(present) <= 20 else None
        slice_text = f"{col} != {ctx.value_name(col, raw)}"
        where = {col: others} if others else None
    return {"column": col, "kind": ctx.kind_of(col), "effect": h, "inside": p_in, "outside": p_out,
            "value": ctx.value_name(col, raw), "where": where, "slice": slice_text, "phrase": phrase,
            "_hit": hit}


# --------------------------------------------------------------------------- actions


def class_population(ctx: InsightContext, mask: np.ndarray, min_share: float = 0.5) -> list[str]:
    """Class names making up at least ``min_share`` of the slice together (largest first), or []."""
    if not ctx.is_classification:
        return []
    y = ctx.labels[np.asarray(mask, bool) & ctx.labelled]
    if len(y) == 0:
        return []
    values, counts = np.unique(y, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    names, share = [], 0.0
    for i in order[:2]:
        names.append(ctx.class_name(values[i]))
        share += counts[i] / len(y)
        if share >= min_share + 0.3:
            break
    return names if share >= min_share else []


def population_test(name: str, metric: str, op: str, threshold: float, **population: Any) -> dict[str, Any]:
    """One ``samplescope test`` check (checks.py's keys), population keys left out when empty."""
    check = {"name": name, **{k: v for k, v in population.items() if v not in (None, [], {})}}
    check.update(metric=metric, op=op, threshold=float(threshold))
    return check


def action(verb: str, text: str, test: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the reader should do: ``verb`` one of relabel, remove_duplicates, collect, watch."""
    out: dict[str, Any] = {"verb": verb, "text": text}
    if test is not None:
        out["test"] = test
    return out

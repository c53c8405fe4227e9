"""`samplescope check`: exercise every declared function on real samples.

Each function is called on a few samples of every subset (the first, the last
and some at random) and, for determinism, called twice. Every problem is
reported with the function's name and the sample, and none stops the others
from being checked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from samplescope.errors import IntegrationError, SamplescopeError
from samplescope.integration.core import SUBSET_NAMES, Function, Integration, _call

Status = Literal["ok", "FAIL"]


@dataclasses.dataclass
class CheckRow:
    function: str
    kind: str
    status: Status
    detail: str


@dataclasses.dataclass
class CheckReport:
    integration: str
    rows: list[CheckRow]

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.rows)

    @property
    def failures(self) -> list[CheckRow]:
        return [r for r in self.rows if r.status != "ok"]

    def table(self) -> str:
        """The report as a plain-text table, one row per function."""
        head = ("function", "kind", "status", "detail")
        body = [(r.function, r.kind, r.status, r.detail) for r in self.rows]
        widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(3)]
        lines = [
            "  ".join(str(c).ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
            for row in [head, *body]
        ]
        lines.insert(1, "-" * min(120, max(len(line) for line in lines)))
        verdict = "all checks passed" if self.ok else f"{len(self.failures)} check(s) failed"
        return "\n".join([f"integration {self.integration!r}: {verdict}", *lines])

    def summary_line(self, spec: str | None = None) -> str:
        """The first failure in one line, with how to see them all (``spec``: what to pass to `check`)."""
        if self.ok:
            return f"integration {self.integration!r}: all checks passed"
        first, more = self.failures[0], len(self.failures) - 1
        detail = " ".join(first.detail.split())  # an exception's message may span lines
        others = f" (and {more} more failed check{'s' if more > 1 else ''})" if more else ""
        return (
            f"Integration {self.integration!r} fails its checks: {first.kind} function {first.function!r}: "
            f"{detail}{others}. Fix it; `samplescope check {spec or self.integration}` lists every check."
        )

    def raise_for_failures(self) -> None:
        if not self.ok:
            raise IntegrationError(self.table())


def check_integration(integration: Integration, samples_per_subset: int = 8, seed: int = 0) -> CheckReport:
    """Check every declared function of ``integration``; see the module docstring."""
    rows: list[CheckRow] = []
    add = rows.append

    try:
        integration.state  # noqa: B018 - computes the preprocess state
        add(CheckRow("preprocess", "preprocess", "ok", "ran" if integration._preprocess else "none declared"))
    except SamplescopeError as exc:
        add(CheckRow("preprocess", "preprocess", "FAIL", str(exc)))
        return CheckReport(integration.name, rows)

    # -- subsets -------------------------------------------------------------
    picks: dict[str, np.ndarray] = {}
    for name in ("train", "validation"):
        if name not in integration.subset_names:
            add(CheckRow(name, "subset", "FAIL", f"required subset {name!r} is not declared; add @x.subset({name!r})"))
    for name in integration.subset_names:
        try:
            sub = integration.get_subset(name)
        except SamplescopeError as exc:
            add(CheckRow(name, "subset", "FAIL", str(exc)))
            continue
        problem = _subset_problem(sub.ids)
        if problem:
            add(CheckRow(name, "subset", "FAIL", problem))
            continue
        add(CheckRow(name, "subset", "ok", f"{len(sub)} samples"))
        picks[name] = _pick(len(sub), samples_per_subset, seed)

    # -- functions -----------------------------------------------------------
    labelled = {n: p for n, p in picks.items() if n != "unlabeled"}
    for fn in integration.inputs.values():
        rows.append(_check_function(integration, fn, picks, _input_problem))
    if integration.inputs and all(r.status == "ok" for r in rows if r.kind == "input"):
        add(_kind_row(integration))
    if integration.ground_truth_fn is None:
        add(CheckRow("ground_truth", "ground_truth", "FAIL", "no ground-truth encoder declared; add @x.ground_truth"))
    else:
        problem = _label_problem(integration.task, integration.classes)
        rows.append(_check_function(integration, integration.ground_truth_fn, labelled, problem))
    for fn in integration.metadata_fns.values():
        declared = getattr(integration, "metadata_kinds", {}) or {}
        rows.append(_check_function(integration, fn, picks, _metadata_checker(declared, fn.name)))
    for fn in integration.visualizers.values():
        rows.append(_check_function(integration, fn, picks, _visual_problem))
    if not integration.inputs:
        add(CheckRow("input", "input", "FAIL", "no input encoder declared; add @x.input('image')"))
    return CheckReport(integration.name, rows)


def _kind_row(integration: Integration) -> CheckRow:
    """The model input's kind (image, vector, tokens) and how it was decided: declared or inferred."""
    name, spec = integration.input_name, integration.input_spec
    try:
        kind = integration.input_kind
    except SamplescopeError as exc:
        return CheckRow(name, "input kind", "FAIL", str(exc))
    if spec.kind_declared:
        how = f"declared (@x.input({name!r}, kind={kind!r}))"
    elif spec.kind is not None:
        how = "inferred from the vocabulary the input declares"
    else:
        shape = tuple(integration.encode_inputs(integration.first_nonempty_subset(), [0]).shape[1:])
        how = f"inferred from the input's shape {shape} (declare kind= on @x.input to override)"
    return CheckRow(name, "input kind", "ok", f"{kind}, {how}")


def _pick(n: int, k: int, seed: int) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    middle = rng.choice(np.arange(1, n - 1), size=max(0, k - 2), replace=False)
    return np.unique(np.concatenate([[0, n - 1], middle]))


def _subset_problem(ids: Any) -> str | None:
    try:
        ids = list(ids)
    except TypeError:
        return f"ids is {type(ids).__name__}, not a sequence of sample ids"
    if not ids:
        return "no samples (ids is empty)"
    missing = [i for i, v in enumerate(ids) if v is None or (isinstance(v, float) and math.isnan(v))]
    if missing:
        return f"missing sample id (None/NaN) at position {missing[0]} ({len(missing)} in all)"
    seen: dict[Any, int] = {}
    for i, v in enumerate(ids):
        if v in seen:
            return f"duplicate sample id {v!r} at positions {seen[v]} and {i}"
        seen[v] = i
    return None


def _check_function(
    integration: Integration,
    fn: Function,
    picks: dict[str, np.ndarray],
    problem_of: Callable[[list[Any], dict[str, Any]], str | None],
) -> CheckRow:
    """Call ``fn`` on the picked samples of every subset, twice; return one row."""
    memo: dict[str, Any] = {}  # what the checker learned from earlier samples (shape, keys, types)
    count = 0
    for subset, indices in picks.items():
        try:
            first = _outputs(integration, fn, subset, indices)
            second = _outputs(integration, fn, subset, indices)
        except SamplescopeError as exc:
            return CheckRow(fn.name, fn.kind, "FAIL", str(exc))
        for index, a, b in zip(indices, first, second, strict=True):
            where = f"on sample {subset}[{index}] (id {integration.get_subset(subset).ids[index]!r})"
            problem = problem_of([a], memo)
            if problem:
                return CheckRow(fn.name, fn.kind, "FAIL", f"{problem} {where}")
            if not _same(a, b):
                return CheckRow(fn.name, fn.kind, "FAIL", f"non-deterministic: two calls differ {where}")
            count += 1
    detail = memo.get("summary", "")
    return CheckRow(fn.name, fn.kind, "ok", f"{count} samples" + (f", {detail}" if detail else ""))


def _outputs(integration: Integration, fn: Function, subset: str, indices: np.ndarray) -> list[Any]:
    """Per-sample outputs of ``fn``, whether it is batched or not."""
    if not fn.batched:
        return [_call(fn.name, fn.fn, integration.sample(subset, int(i))) for i in indices]
    out = _call(fn.name, fn.fn, integration.batch(subset, indices))
    n = len(indices)
    if isinstance(out, dict):
        bad = {k: len(np.asarray(v)) for k, v in out.items() if np.ndim(v) < 1 or len(np.asarray(v)) != n}
        if bad:
            raise IntegrationError(
                f"batched function {fn.name!r} returned columns {bad} rows for a batch of {n}; "
                "return one value per sample"
            )
        return [{k: _scalar(np.asarray(v)[i]) for k, v in out.items()} for i in range(n)]
    arr = np.asarray(out)
    if arr.ndim < 1 or len(arr) != n:
        raise IntegrationError(
            f"batched function {fn.name!r} returned shape {arr.shape} for a batch of {n}; "
            "return an array whose first axis is the batch"
        )
    return list(arr)


def _scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(
            _same(a[k], b[k]) for k in a
        )
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))
    except TypeError:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _input_problem(values: list[Any], memo: dict[str, Any]) -> str | None:
    x = values[0]
    if not isinstance(x, np.ndarray | list | tuple) and not hasattr(x, "__array__"):
        return f"returned {type(x).__name__}, expected an array"
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_:
        return f"returned dtype {arr.dtype}, expected a numeric array (float32)"
    if arr.ndim == 0:
        return "returned a scalar, expected an array such as (C, H, W)"
    if not np.isfinite(arr).all():
        return f"returned NaN or inf ({int((~np.isfinite(arr)).sum())} values)"
    shape = memo.setdefault("shape", arr.shape)
    if arr.shape != shape:
        return f"returned shape {arr.shape}, but {shape} for an earlier sample; all inputs must share one shape"
    memo["summary"] = f"shape {shape}, dtype {arr.dtype}"
    return None


def _label_problem(task: Any, classes: list[str]) -> Callable[[list[Any], dict[str, Any]], str | None]:
    """The task says what a valid ground-truth value is (a class index, a float, a set of classes)."""

    def problem(values: list[Any], memo: dict[str, Any]) -> str | None:
        found = task.label_problem(values[0], classes)
        if found is None:
            memo["summary"] = f"{len(classes)} classes" if task.name == "classification" else (
                f"{task.name}" + (f", {len(classes)} classes" if classes else ""))
        return found

    return problem


_TYPES = {bool: "bool", int: "number", float: "number", str: "string"}


def _type_name(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    for t, name in _TYPES.items():
        if type(v) is t:
            return name
    return "invalid"


def _metadata_problem(values: list[Any], memo: dict[str, Any]) -> str | None:
    value = values[0]
    columns = value if isinstance(value, dict) else {"": value}
    keys = memo.setdefault("keys", sorted(columns))
    if sorted(columns) != keys:
        return f"returned keys {sorted(columns)}, but {keys} for an earlier sample; keys must not change"
    types: dict[str, str] = memo.setdefault("types", {})
    for key, v in columns.items():
        label = f"key {key!r} " if key else ""
        t = _type_name(v)
        if t == "invalid":
            return f"{label}returned {v!r} ({type(v).__name__}); metadata must be a number, string, bool or None"
        if t == "number" and not math.isfinite(float(v)):
            return f"{label}returned {v!r}; use None for a missing value, not NaN/inf"
        if t is not None and types.setdefault(key, t) != t:
            return f"{label}changed type from {types[key]} to {t} ({v!r}); keep one type per key"
    memo["summary"] = f"{len(keys)} column(s)" if isinstance(value, dict) else (types.get("") or "")
    return None


def _metadata_checker(declared: dict[str, str], fn_name: str) -> Callable[[list[Any], dict[str, Any]], str | None]:
    """:func:`_metadata_problem`, and a note on integer columns with no declared kind: a
    few-valued integer may be a rank (ordinal), a code (category) or a class index (class)."""

    def problem(values: list[Any], memo: dict[str, Any]) -> str | None:
        found = _metadata_problem(values, memo)
        if found:
            return found
        value = values[0]
        ints: dict[str, set] = memo.setdefault("ints", {})
        for key, v in (value if isinstance(value, dict) else {fn_name: value}).items():
            if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
                ints.setdefault(str(key), set()).add(int(v))
        undeclared = sorted(k for k in ints if k not in declared and fn_name not in declared)
        if undeclared:
            few = [k for k in undeclared if len(ints[k]) <= 10]
            if few:
                memo["summary"] = memo.get("summary", "").split("; ")[0] + (
                    f"; integer column(s) {', '.join(few)} have few values and no declared kind (read as "
                    "ordinal): declare kind='ordinal', 'category' or 'class' in @metadata(..., kind=...)"
                )
        return None

    return problem


def _visual_problem(values: list[Any], memo: dict[str, Any]) -> str | None:
    arr = np.asarray(values[0])
    if arr.ndim not in (2, 3):
        return f"returned shape {arr.shape}; a visualizer returns an (H, W) or (H, W, 3) image"
    if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
        return "returned non-numeric or non-finite pixels"
    memo["summary"] = f"image {arr.shape}"
    return None


__all__ = ["SUBSET_NAMES", "CheckReport", "CheckRow", "check_integration"]

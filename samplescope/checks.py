"""Population tests: gate a model on the slices that matter (``samplescope test RUN --spec checks.toml``).

A spec is a TOML file of checks; each names a population, a metric, an operator and
a threshold::

    [[check]]
    name = "validation accuracy"
    subset = "validation"
    metric = "accuracy"          # accuracy, error_rate, mean_loss or count
    op = ">="                    # >=, >, <=, <, ==
    threshold = 0.99

    [[check]]
    name = "thin 9s"
    subset = "validation"
    classes = ["9"]              # class names (or indices) of the ground truth
    where = { ink = { max = 0.1 }, even_odd = "odd" }   # metadata: a value, a list of values, or {min, max}
    tags = ["mislabeled"]        # samples carrying every one of these tags
    cluster = 17                 # one cluster id, or a list
    metric = "error_rate"
    op = "<="
    threshold = 0.05

Every population is counted in DuckDB (no row is loaded). ``suggest(run)`` writes a
spec from the run's insights: each insight's own population test (its slice, or its
count of mislabels, duplicates or leaked samples) with the current value as the
threshold (so the next model must be no worse there), plus each subset's accuracy.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samplescope.errors import ParameterError

METRICS = ("accuracy", "error_rate", "mean_loss", "count")
OPS = {">=": lambda v, t: v >= t, ">": lambda v, t: v > t, "<=": lambda v, t: v <= t,
       "<": lambda v, t: v < t, "==": lambda v, t: v == t}
_KEYS = {"name", "subset", "classes", "where", "tags", "cluster", "metric", "op", "threshold"}


@dataclass(frozen=True)
class Check:
    name: str
    metric: str
    op: str
    threshold: float
    subset: str | None = None
    classes: tuple[Any, ...] = ()
    where: tuple[tuple[str, Any], ...] = ()
    tags: tuple[str, ...] = ()
    cluster: tuple[int, ...] = ()


@dataclass(frozen=True)
class Result:
    check: Check
    value: float
    count: int
    passed: bool


def load_spec(path: str | Path) -> list[Check]:
    """Read and validate a TOML spec; a bad entry is a one-line error naming the check and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ParameterError(f"Spec file {path} does not exist; write one, or start from --suggest.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"Spec file {path} is not valid TOML ({exc}).") from exc
    raw = data.get("check")
    if not isinstance(raw, list) or not raw:
        raise ParameterError(f"Spec file {path} has no [[check]] tables; see `samplescope test --help`.")
    return [parse_check(entry, f"{path} check {i + 1}") for i, entry in enumerate(raw)]


def parse_check(entry: dict[str, Any], where_: str) -> Check:
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ParameterError(f"{where_}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}.")
    metric = entry.get("metric")
    if metric not in METRICS:
        raise ParameterError(f"{where_}: metric={metric!r}; choose one of {list(METRICS)}.")
    op = entry.get("op", ">=")
    if op not in OPS:
        raise ParameterError(f"{where_}: op={op!r}; choose one of {list(OPS)}.")
    threshold = entry.get("threshold")
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not math.isfinite(threshold):
        raise ParameterError(f"{where_}: threshold={threshold!r}; give a number.")
    where = entry.get("where", {})
    if not isinstance(where, dict):
        raise ParameterError(f"{where_}: where must be a table of column = condition.")
    cluster = entry.get("cluster", [])
    cluster = [cluster] if isinstance(cluster, int) else cluster
    classes = entry.get("classes", [])
    tags = entry.get("tags", [])
    for key, value in (("classes", classes), ("tags", tags), ("cluster", cluster)):
        if not isinstance(value, list):
            raise ParameterError(f"{where_}: {key} must be a list.")
    return Check(
        name=str(entry.get("name") or where_), metric=metric, op=op, threshold=float(threshold),
        subset=entry.get("subset"), classes=tuple(classes), where=tuple(sorted(where.items())),
        tags=tuple(str(t) for t in tags), cluster=tuple(int(c) for c in cluster),
    )


def _filters(run: Any, check: Check) -> list[tuple[str, str, Any]]:
    """The check's population as store filters (store/query.py)."""
    # metrics are over labelled samples: a class index >= 0, else (regression, multi-label) a label at all
    labelled = ("label", ">=", 0) if run.task.name == "classification" else ("label", "is not null", None)
    out: list[tuple[str, str, Any]] = [labelled]
    if check.classes:
        index = []
        for c in check.classes:
            if isinstance(c, int) and 0 <= c < len(run.classes):
                index.append(c)
            elif str(c) in run.classes:
                index.append(run.classes.index(str(c)))
            else:
                raise ParameterError(f"check {check.name!r}: class {c!r} is not one of {run.classes}.")
        if run.task.name == "multilabel":  # samples carrying every one of the classes
            out += [(f"label_{k}", "==", True) for k in index]
        else:
            out.append(("label", "in", index))
    for column, cond in check.where:
        if isinstance(cond, dict):
            bad = set(cond) - {"min", "max"}
            if bad:
                raise ParameterError(f"check {check.name!r}: where.{column} has {sorted(bad)}; use min and max.")
            out.append((column, "between", (cond.get("min"), cond.get("max"))))
        elif isinstance(cond, list):
            out.append((column, "in", cond))
        else:
            out.append((column, "==", cond))
    if check.cluster:
        out.append(("cluster", "in", list(check.cluster)))
    for tag in check.tags:
        out.append(("sample_id", "in", run.tagged(tag).tolist()))
    return out


def evaluate(run: Any, checks: list[Check]) -> list[Result]:
    """Each check's metric on its population, in DuckDB; an empty population fails its check."""
    from samplescope.run import as_run

    run = as_run(run)
    run.require_analysis()
    results = []
    for check in checks:
        filters = _filters(run, check)
        n = run.count(where=filters, subset=check.subset)
        if check.metric == "count":
            value = float(n)
        elif n == 0:
            value = math.nan
        elif check.metric in ("accuracy", "error_rate"):
            right = run.count(where=[*filters, ("correct", "==", True)], subset=check.subset)
            value = right / n if check.metric == "accuracy" else 1 - right / n
        else:
            frame = run.samples(columns=["loss"], where=filters, subset=check.subset)
            value = float(frame["loss"].mean())
        passed = not math.isnan(value) and OPS[check.op](value, check.threshold)
        results.append(Result(check=check, value=value, count=n, passed=passed))
    return results


def table(results: list[Result]) -> str:
    """The results as a plain-text table (what `samplescope test` prints)."""
    rows = [("", "check", "samples", "metric", "value", "wanted")]
    for r in results:
        c = r.check
        rows.append(("PASS" if r.passed else "FAIL", c.name, f"{r.count:,}", c.metric,
                     "-" if math.isnan(r.value) else f"{r.value:.4g}", f"{c.op} {c.threshold:.4g}"))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)


def suggest(run: Any) -> str:
    """A TOML spec from the run's insights and accuracies, thresholds at today's values."""
    from samplescope.run import as_run

    run = as_run(run)
    run.require_analysis()
    lines = [f"# population tests suggested from run {run.name}: thresholds are today's values,",
             "# so a model passes when it is no worse on each slice. Edit freely.", ""]

    def add(name: str, metric: str, op: str, value: float, **population: Any) -> None:
        lines.append("[[check]]")
        lines.append(f"name = {_toml(name)}")
        for k, v in population.items():
            lines.append(f"{k} = {_toml(v)}")
        lines.extend([f'metric = "{metric}"', f'op = "{op}"', f"threshold = {_loose(value, op)!r}", ""])

    for subset, acc in (run.info["analysis"].get("accuracy") or {}).items():
        if acc is not None and not math.isnan(acc):
            add(f"{subset} accuracy", "accuracy", ">=", math.floor(acc * 10_000) / 10_000, subset=subset)
    for ins in run.insights():
        d = ins.details
        test = (d.get("action") or {}).get("test")
        if test:  # the insight's own population test (samplescope/analysis/insights/explain.py)
            population = {k: v for k, v in test.items() if k not in ("name", "metric", "op", "threshold")}
            # the insight's threshold is where the slice should get to; a suggested gate starts at today's value
            today = evaluate(run, [parse_check(dict(test), f"insight {ins.kind}")])[0].value
            value = float(test["threshold"]) if math.isnan(today) else today
            add(test["name"], test["metric"], test["op"], value, **population)
        elif ins.kind == "low_performance_cluster" and "cluster" in d:
            add(f"cluster {d['cluster']} error rate ({ins.title})", "error_rate", "<=",
                math.ceil(d["error_rate"] * 10_000) / 10_000, cluster=int(d["cluster"]))
        elif ins.kind == "metadata_failure" and "value" in d and "column" in d:
            value = _typed(run, d["column"], d["value"])
            add(f"{d['column']} = {d['value']} error rate", "error_rate", "<=",
                math.ceil(d["error_rate"] * 10_000) / 10_000, where={d["column"]: value})
    return "\n".join(lines)


def _loose(value: float, op: str, digits: int = 6) -> float:
    """``value`` to ``digits`` significant figures, rounded towards passing ``op``.

    A threshold written at today's value must pass on today's run: 0.9912345 as
    ``>= 0.991235`` (plain rounding) would fail, ``>= 0.991234`` passes.
    """
    if value == 0 or not math.isfinite(value):
        return float(value)
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(abs(value))))
    rounded = (math.floor if op in (">=", ">") else math.ceil)(value * scale) / scale
    if op in (">=", "<=") and not OPS[op](value, rounded):  # the division's own rounding
        rounded = value
    return rounded


def _typed(run: Any, column: str, value: Any) -> Any:
    """An insight's value (stored as text) in the column's own type."""
    kind = run.db.columns().get(column, "")
    try:
        if "INT" in kind:
            return int(float(value))
        if kind in ("DOUBLE", "FLOAT", "REAL"):
            return float(value)
        if kind == "BOOLEAN":
            return str(value).lower() == "true"
    except ValueError:
        pass
    return str(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml(key)

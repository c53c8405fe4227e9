"""Compare two analysed runs of the same integration: what the second model fixed, broke and kept.

    cmp = samplescope.compare("runs/v1", "runs/v2")
    cmp.summary          # one row per subset: accuracy A and B, fixed, broken, still wrong, mean loss change
    cmp.samples          # one row per sample: status (fixed/broken/still_wrong/still_right), loss_a, loss_b, ...
    cmp.by("label")      # the same counts per class (or per cluster of A, a metadata column, a tag)
    cmp.insights         # A's insights resolved or persisting in B, and B's new ones
    cmp.confusion_change("validation")   # B's confusion matrix minus A's

Samples are matched by subset and the integration's own key (not by sample id, which
depends on subset sizes), so a run trained with ``--limit`` or on a changed dataset is
compared on the samples both have; a run of another integration is refused.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from samplescope.errors import ParameterError, RunError

STATUSES = ("fixed", "broken", "still_wrong", "still_right")
#: two insights of the same kind are the same finding when their samples overlap this much (Jaccard)
SAME_FINDING = 0.3
_COLUMNS = ["subset", "key", "label", "prediction", "loss", "correct"]


@dataclass
class Comparison:
    """Two runs side by side; build it with :func:`compare`."""

    a: Any
    b: Any
    samples: pd.DataFrame
    insights: pd.DataFrame
    unmatched: dict[str, int] = field(default_factory=dict)

    @property
    def summary(self) -> pd.DataFrame:
        """Per subset: samples, accuracy in A and B, fixed, broken, still wrong, mean loss A, B and change."""
        return _counts(self.samples, "subset")

    def by(self, column: str, bins: int = 5) -> pd.DataFrame:
        """The comparison counts per value of ``column``: ``label`` (by class name), ``cluster`` (A's
        clusters), ``tag:NAME`` (in the tag of B or not), or any metadata column of A (numeric ones in
        ``bins`` quantile bins)."""
        frame = self.samples
        if column.startswith("tag:"):
            name = column[4:]
            ids = set(self.b.tagged(name).tolist())
            key = frame["sample_id_b"].isin(ids).map({True: f"in {name}", False: f"not in {name}"})
            return _counts(frame.assign(_key=key), "_key").rename(columns={"_key": column})
        if column == "label" and self.a.task.name == "classification":
            names = np.asarray(self.a.classes, dtype=object)
            labelled = frame[frame["label"] >= 0]
            return _counts(labelled.assign(label=names[labelled["label"].to_numpy()]), "label")
        if column not in frame.columns:
            extra = self.a.samples(columns=[column]) if column in self.a.db.columns() else None
            if extra is None:
                raise ParameterError(
                    f"Cannot compare by {column!r}: it is neither label, cluster, tag:NAME nor a column of run "
                    f"{self.a.name} (its columns: {', '.join(self.a.db.columns())})."
                )
            frame = frame.merge(extra.rename(columns={"sample_id": "sample_id_a"}), on="sample_id_a", how="left")
        values = frame[column]
        if pd.api.types.is_float_dtype(values) or (pd.api.types.is_integer_dtype(values) and values.nunique() > 20
                                                    and column != "cluster"):
            values = pd.qcut(values, bins, duplicates="drop").astype(str)
        return _counts(frame.assign(**{column: values}), column)

    def confusion_change(self, subset: str = "validation") -> np.ndarray:
        """(C, C): B's confusion matrix minus A's, over the matched samples of ``subset``."""
        if self.a.task.name != "classification":
            raise ParameterError(f"A {self.a.task.name} run has no confusion matrix; compare by('label') instead.")
        part = self.samples[(self.samples["subset"] == subset) & (self.samples["label"] >= 0)]
        n = len(self.a.classes)

        def matrix(pred: str) -> np.ndarray:
            codes = part["label"].to_numpy(np.int64) * n + part[pred].to_numpy(np.int64)
            return np.bincount(codes, minlength=n * n).reshape(n, n)

        return matrix("prediction_b") - matrix("prediction_a")

    def checks(self, spec: str | Path | list[Any]) -> pd.DataFrame:
        """A population-test spec (``samplescope.checks``: a TOML file or its checks) evaluated on
        both runs: one row per check with each run's population size, value and verdict."""
        from samplescope import checks

        found = checks.load_spec(spec) if isinstance(spec, str | Path) else list(spec)
        ra, rb = checks.evaluate(self.a, found), checks.evaluate(self.b, found)
        return pd.DataFrame([{
            "check": x.check.name, "metric": x.check.metric, "op": x.check.op, "threshold": x.check.threshold,
            "count_a": x.count, "value_a": x.value, "passed_a": x.passed,
            "count_b": y.count, "value_b": y.value, "passed_b": y.passed,
        } for x, y in zip(ra, rb, strict=True)])  # fmt: skip

    def checks_text(self, spec: str | Path | list[Any]) -> str:
        """:meth:`checks` as lines for the terminal: which checks B newly passes or fails."""
        t = self.checks(spec)
        lines = [f"{'check':<48} {'threshold':>12} {'A':>10} {'B':>10}"]
        for r in t.itertuples():
            lines.append(f"{r.check[:48]:<48} {r.op:>2} {r.threshold:<9.4g} {r.value_a:>6.4g} {_word(r.passed_a)} "
                         f"{r.value_b:>6.4g} {_word(r.passed_b)}")
        lines.append(f"A passes {int(t.passed_a.sum())} of {len(t)}, B {int(t.passed_b.sum())}; newly failing in B: "
                     f"{int((t.passed_a & ~t.passed_b).sum())}, newly passing: {int((~t.passed_a & t.passed_b).sum())}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": str(self.a.path), "b": str(self.b.path), "unmatched": self.unmatched,
            "summary": self.summary.to_dict("records"),
            "by_label": self.by("label").to_dict("records"),
            "insights": self.insights.to_dict("records"),
        }

    def write(self, out: str | Path) -> Path:
        """Write ``comparison.json``, ``samples.parquet`` (one row per matched sample) and a text summary."""
        import os
        import tempfile

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for name, write in (
            ("comparison.json", lambda p: Path(p).write_text(json.dumps(self.to_dict(), indent=1, default=_plain))),
            ("samples.parquet", lambda p: self.samples.to_parquet(p, index=False)),
            ("summary.txt", lambda p: Path(p).write_text(self.text() + "\n")),
        ):
            fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.")
            os.close(fd)
            try:
                write(tmp)
                os.replace(tmp, out / name)
            except OSError as exc:
                Path(tmp).unlink(missing_ok=True)
                raise RunError(f"Cannot write {out / name} ({exc.strerror}).") from exc
        return out

    def text(self) -> str:
        """A plain-text summary for the terminal."""
        lines = [f"A = {self.a.path}   B = {self.b.path}"]
        if self.unmatched:
            lines.append("unmatched samples: " + ", ".join(f"{k} {v:,}" for k, v in self.unmatched.items()))
        head = f"{'subset':<11} {'samples':>8} {'acc A':>8} {'acc B':>8} {'fixed':>7} {'broken':>7} " \
               f"{'wrong':>7} {'loss A':>8} {'loss B':>8}"
        lines.append(head)
        for r in self.summary.itertuples():
            lines.append(f"{r.subset:<11} {r.samples:>8,} {r.accuracy_a:>8.2%} {r.accuracy_b:>8.2%} {r.fixed:>7,} "
                         f"{r.broken:>7,} {r.still_wrong:>7,} {r.mean_loss_a:>8.4f} {r.mean_loss_b:>8.4f}")
        if len(self.insights):
            counts = self.insights["status"].value_counts()
            lines.append("insights: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("resolved", "persists", "new")))
        return "\n".join(lines)


def compare(a: Any, b: Any) -> Comparison:
    """Compare run ``a`` (before) with run ``b`` (after): paths or open runs, both analysed."""
    from samplescope.run import as_run

    a, b = as_run(a), as_run(b)
    for run in (a, b):
        run.require_analysis()
    ia, ib = a.info["integration"], b.info["integration"]
    if ia.get("name") != ib.get("name"):
        raise RunError(
            f"Runs {a.path} and {b.path} were made with different integrations ({ia.get('name')!r} and "
            f"{ib.get('name')!r}); compare two runs of the same dataset."
        )
    if list(a.classes) != list(b.classes):
        raise RunError(f"Runs {a.path} and {b.path} have different classes; compare runs of the same integration.")
    left = a.samples(columns=[*_COLUMNS, *(["cluster"] if "cluster" in a.db.columns() else [])])
    right = b.samples(columns=_COLUMNS)
    merged = left.merge(right, on=["subset", "key"], suffixes=("_a", "_b"), how="inner")
    unmatched = {"only in A": len(left) - len(merged), "only in B": len(right) - len(merged)}
    unmatched = {k: v for k, v in unmatched.items() if v}
    if merged.empty:
        raise RunError(f"Runs {a.path} and {b.path} share no sample (matched by subset and key).")
    changed = merged[(merged["label_a"] != merged["label_b"]) & _labelled(a, merged["label_a"])]
    merged = merged.rename(columns={"label_a": "label"})
    merged["label_changed"] = merged["label"] != merged.pop("label_b")
    ok_a, ok_b = merged["correct_a"].astype(bool), merged["correct_b"].astype(bool)
    status = np.select([~ok_a & ok_b, ok_a & ~ok_b, ~ok_a & ~ok_b], ["fixed", "broken", "still_wrong"],
                       "still_right")
    merged["status"] = np.where(_labelled(a, merged["label"]), status, "unlabeled")
    merged["loss_change"] = merged["loss_b"] - merged["loss_a"]
    if len(changed):
        unmatched["relabelled in B"] = len(changed)
    return Comparison(a=a, b=b, samples=merged, insights=_insight_changes(a, b, merged), unmatched=unmatched)


def _labelled(run: Any, labels: pd.Series) -> np.ndarray:
    """Which rows carry ground truth: a class index >= 0, or (regression, multi-label) any label."""
    if run.task.name == "classification":
        return (labels >= 0).to_numpy()
    return labels.notna().to_numpy()


def _word(passed: bool) -> str:
    return "pass" if passed else "FAIL"


def _counts(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    labelled = frame[frame["status"] != "unlabeled"]
    g = labelled.groupby(key, sort=True, observed=True)
    out = pd.DataFrame({
        "samples": g.size(),
        "accuracy_a": g["correct_a"].mean(),
        "accuracy_b": g["correct_b"].mean(),
        **{s: g["status"].apply(lambda v, s=s: int((v == s).sum())) for s in STATUSES[:3]},
        "mean_loss_a": g["loss_a"].mean(),
        "mean_loss_b": g["loss_b"].mean(),
    })
    out["loss_change"] = out["mean_loss_b"] - out["mean_loss_a"]
    return out.reset_index()


def _insight_changes(a: Any, b: Any, merged: pd.DataFrame) -> pd.DataFrame:
    """A's insights: ``resolved`` or ``persists`` (a B insight of the same kind on overlapping samples);
    B's insights without such a match: ``new``. Sample ids are mapped through the matched keys."""
    to_b = dict(zip(merged["sample_id_a"].to_numpy(), merged["sample_id_b"].to_numpy(), strict=True))
    found_b = b.insights()
    used: set[int] = set()
    rows = []
    for ins in a.insights():
        ids = {to_b[s] for s in ins.sample_ids if s in to_b}
        best, best_j = None, 0.0
        for j, other in enumerate(found_b):
            if other.kind != ins.kind or j in used:
                continue
            theirs = set(other.sample_ids)
            jac = len(ids & theirs) / len(ids | theirs) if ids | theirs else 1.0
            if jac > best_j:
                best, best_j = j, jac
        if best is not None and best_j >= SAME_FINDING:
            used.add(best)
            rows.append({"status": "persists", "kind": ins.kind, "a": ins.title, "b": found_b[best].title,
                         "overlap": best_j})
        else:
            rows.append({"status": "resolved", "kind": ins.kind, "a": ins.title, "b": None, "overlap": best_j})
    for j, other in enumerate(found_b):
        if j not in used:
            rows.append({"status": "new", "kind": other.kind, "a": None, "b": other.title, "overlap": 0.0})
    return pd.DataFrame(rows, columns=["status", "kind", "a", "b", "overlap"])


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class _CallableModule(types.ModuleType):
    """``samplescope.compare`` is a function and this module's name: importing the module
    makes Python bind it over the function on the package, so the module calls like it."""

    def __call__(self, a: Any, b: Any) -> Comparison:
        return compare(a, b)


sys.modules[__name__].__class__ = _CallableModule

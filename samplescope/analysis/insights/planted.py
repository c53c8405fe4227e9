"""Planted faults on MNIST: do the insight finders find what an expert would act on?

The faults are planted in the **validation** samples a trained model is analysed on, so
no retraining is needed: take a model trained on clean MNIST, make a run of it with
:func:`planted_mnist` (``samplescope.create_run``), analyse it, and :func:`evaluate`
the insights against what was planted. Every planted sample is generated here from the
MNIST files (nothing is stored):

- ``rotated 1s``: a third of the validation 1s rotated by 45 degrees counter-clockwise
  (the fast-recipe model fails on ~40% of them); the column that describes them is
  ``slant`` (their mean slant moves by ~4 standard deviations of the 1s');
- ``thick 7s``: a third of the validation 7s with strokes thickened by a 4 x 4 grey
  dilation (about a fifth fail); described by ``ink``;
- ``flipped labels``: 100 validation labels changed to another class;
- copies of training images put in validation, 40 of each kind: ``exact``, ``shifted``
  (1-2 pixels in each direction), ``rescaled`` (by 0.9 or 1.1 about the centre) and
  ``re-encoded`` (JPEG at quality 75).

``evaluate`` answers, per fault: was it found, the rank of the insight that finds it
among the insights of its kind (by severity), and whether its explanation names the
planted column; for the copies, the recall of each kind and the pairs reported that
were not planted (and are not in the clean run either). On the clean run it counts the
insights of medium severity or more (>= 1/3: 5% of the errors) that nothing real explains: a cluster whose
explanation names no column, outliers no more often wrong than the rest, or duplicate
pairs seen only in latent space.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from samplescope.analysis.insights.base import severity_band

__all__ = ["Planted", "evaluate", "planted_mnist", "table"]

N_COPIES = 40
N_FLIPPED = 100
COPY_KINDS = ("exact", "shifted", "rescaled", "re-encoded")


@dataclass
class Planted:
    """Validation positions of each planted fault (filled by :func:`planted_mnist`'s state)."""

    rotated: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    thick: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    flipped: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    copies: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # (train pos, val pos)


def _plant(state: Any, n_train: int, seed: int, planted: Planted) -> Any:
    """A copy of the MNIST state with the faults planted in its validation arrays."""
    from PIL import Image
    from scipy.ndimage import grey_dilation, rotate, shift, zoom

    rng = np.random.default_rng(seed)
    x = state.x_test.copy()
    y = state.y_test.copy()
    free = np.ones(len(y), bool)

    def take(candidates: np.ndarray, n: int) -> np.ndarray:
        chosen = np.sort(rng.choice(candidates[free[candidates]], n, replace=False))
        free[chosen] = False
        return chosen

    ones, sevens = np.flatnonzero(y == 1), np.flatnonzero(y == 7)
    planted.rotated = take(ones, len(ones) // 3)
    for i in planted.rotated:
        x[i] = rotate(x[i].astype(np.float32), 45, reshape=False, order=1).clip(0, 255).astype(np.uint8)
    planted.thick = take(sevens, len(sevens) // 3)
    for i in planted.thick:
        x[i] = grey_dilation(x[i], size=(4, 4))
    others = np.flatnonzero((y != 1) & (y != 7))
    planted.flipped = take(others, N_FLIPPED)
    y[planted.flipped] = (y[planted.flipped] + rng.integers(1, 10, N_FLIPPED)) % 10

    sources = rng.choice(n_train, N_COPIES * len(COPY_KINDS), replace=False)
    targets = take(others, N_COPIES * len(COPY_KINDS))
    for k, kind in enumerate(COPY_KINDS):
        pairs = []
        for src, dst in zip(sources[k::len(COPY_KINDS)], targets[k::len(COPY_KINDS)], strict=True):
            img = state.x_train[src].astype(np.float32)
            if kind == "shifted":
                img = shift(img, rng.choice([-2, -1, 1, 2], 2), order=0)
            elif kind == "rescaled":
                f = rng.choice([0.9, 1.1])
                z = zoom(img, f, order=1)
                if f > 1:
                    o = (z.shape[0] - 28) // 2
                    img = z[o : o + 28, o : o + 28]
                else:
                    img = np.zeros((28, 28), np.float32)
                    o = (28 - z.shape[0]) // 2
                    img[o : o + z.shape[0], o : o + z.shape[1]] = z
            elif kind == "re-encoded":
                buf = io.BytesIO()
                Image.fromarray(img.astype(np.uint8)).save(buf, format="JPEG", quality=75)
                img = np.asarray(Image.open(buf), np.float32)
            x[dst] = img.clip(0, 255).astype(np.uint8)
            y[dst] = state.y_train[src]
            pairs.append((int(src), int(dst)))
        planted.copies[kind] = pairs
    return dataclasses.replace(state, x_test=x, y_test=y)


def planted_mnist(n_train: int = 60_000, seed: int = 0, faults: bool = True) -> tuple[Any, Planted]:
    """An MNIST integration (the built-in one's functions) whose validation subset carries
    the planted faults (``faults=False``: the same integration, clean), and what was planted.

    Copies come from the first ``n_train`` training images (a run made with ``limit``).
    """
    from samplescope import Integration
    from samplescope.integrations import mnist as base

    planted = Planted()
    integ = Integration("mnist", classes=base.CLASSES, version="planted-1" if faults else "1")

    @integ.preprocess
    def load() -> Any:
        state = base.load()
        return _plant(state, n_train, seed, planted) if faults else state

    integ.subset("train")(base.train)
    integ.subset("validation")(base.validation)
    integ.input("image", batched=True)(base.image)
    integ.ground_truth_batched(base.label)
    for name, fn in base.mnist.metadata_fns.items():
        integ.metadata(name, batched=fn.batched)(fn.fn)
    integ.metadata_kinds.update(base.mnist.metadata_kinds)
    integ.visualizer("image")(base.picture)
    return integ, planted


# --------------------------------------------------------------------------- evaluation


def _ids(run: Any) -> tuple[dict[int, int], dict[int, int]]:
    """Train and validation positions -> sample ids."""
    frame = run.samples(columns=["subset", "index"])
    train = frame[frame["subset"] == "train"]
    val = frame[frame["subset"] == "validation"]
    return (dict(zip(train["index"].astype(int), train["sample_id"].astype(int), strict=True)),
            dict(zip(val["index"].astype(int), val["sample_id"].astype(int), strict=True)))


def _columns_named(insight: Any) -> set[str]:
    d = insight.details
    named = {m["column"] for m in d.get("metadata") or []}
    if "column" in d:
        named.add(d["column"])
    for also in d.get("also") or []:
        named.add(str(also).split(" ")[0])
    return named


def _subpopulation(rows: list[dict], name: str, column: str, planted_ids: set[int], insights: list) -> None:
    for kind in ("low_performance_cluster", "metadata_failure"):
        ranked = [i for i in insights if i.kind == kind]
        match = None
        for rank, ins in enumerate(ranked, start=1):
            ids = set(ins.sample_ids)
            if ids and len(ids & planted_ids) / len(ids) >= 0.5:
                match = (rank, ins)
                break
        row = {"fault": name, "kind": kind, "found": match is not None,
               "rank": match[0] if match else None, "of": len(ranked),
               "names": (column in _columns_named(match[1])) if match else False, "column": column,
               "text": match[1].text if match else ""}
        rows.append(row)


def evaluate(run: Any, planted: Planted, clean: Any | None = None) -> dict[str, Any]:
    """Score the insights of an analysed planted run (and of the clean run, if given)."""
    train_id, val_id = _ids(run)
    insights = run.insights()
    rows: list[dict[str, Any]] = []
    _subpopulation(rows, "rotated 1s", "slant", {val_id[i] for i in planted.rotated}, insights)
    _subpopulation(rows, "thick 7s", "ink", {val_id[i] for i in planted.thick}, insights)

    flipped = {val_id[i] for i in planted.flipped}
    mislabels = [i for i in insights if i.kind == "mislabel"]
    recall = len(flipped & set(mislabels[0].sample_ids)) / len(flipped) if mislabels else 0.0
    rows.append({"fault": "flipped labels", "kind": "mislabel", "found": recall >= 0.5,
                 "rank": 1 if mislabels else None, "of": len(mislabels), "names": None,
                 "column": "", "recall": recall})

    leaks = [i for i in insights if i.kind == "leakage"]
    reported = {(int(a), int(b)) for ins in leaks for a, b, *_ in ins.details["pairs"]}
    clean_pairs: set[tuple[int, int]] = set()
    if clean is not None:
        clean_pairs = {(int(a), int(b)) for ins in clean.insights() if ins.kind == "leakage"
                       for a, b, *_ in ins.details["pairs"]}
    all_planted = set()
    for kind in COPY_KINDS:
        pairs = {(train_id[s], val_id[d]) for s, d in planted.copies[kind]}
        all_planted |= pairs
        recall = len(pairs & reported) / len(pairs)
        rows.append({"fault": f"{kind} copies", "kind": "leakage", "found": recall >= 0.5,
                     "rank": 1 if leaks and recall else None, "of": len(leaks), "names": None,
                     "column": "", "recall": recall})
    false_pairs = len(reported - all_planted - clean_pairs)
    result: dict[str, Any] = {"rows": rows, "false_leak_pairs": false_pairs}
    if clean is not None:
        result["clean"] = clean_alarms(clean)
    return result


def clean_alarms(run: Any) -> dict[str, Any]:
    """Insights of medium severity or more on a clean run, and those nothing real explains."""
    medium = [i for i in run.insights() if severity_band(i.severity) != "low"]
    unexplained = []
    for ins in medium:
        d = ins.details
        if ins.kind in ("low_performance_cluster", "overfitting") and not d.get("metadata") or ins.kind == "outlier" and d.get("error_rate", 0) <= 2 * d.get("overall_error_rate", 0) or ins.kind in ("duplicate", "leakage") and d.get("n_latent_only", 0) == d.get("n_pairs", 0):
            unexplained.append(ins)
    return {"medium_or_higher": len(medium), "unexplained": len(unexplained),
            "unexplained_texts": [i.text for i in unexplained],
            "medium_texts": [f"[{i.severity:.2f}] {i.text}" for i in medium]}


def table(result: dict[str, Any]) -> str:
    """The planted-fault table as Markdown (the README's)."""
    lines = ["| planted fault | insight kind | found | rank in kind | names the planted column |",
             "| --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        found = "yes" if r["found"] else "no"
        if "recall" in r:
            found += f" (recall {r['recall']:.0%})"
        rank = f"{r['rank']} of {r['of']}" if r["rank"] else "-"
        names = "-" if r["names"] is None else (f"yes ({r['column']})" if r["names"] else f"no ({r['column']})")
        lines.append(f"| {r['fault']} | {r['kind']} | {found} | {rank} | {names} |")
    lines.append(f"\nLeakage pairs reported that were not planted (nor in the clean run): "
                 f"{result['false_leak_pairs']}.")
    if "clean" in result:
        c = result["clean"]
        lines.append(f"Clean run: {c['medium_or_higher']} insights of medium severity or more, "
                     f"{c['unexplained']} of them explained by nothing real.")
    return "\n".join(lines)

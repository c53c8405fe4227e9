"""Integrations without code: arrays and data frames already in memory.

    from samplescope.integrations import from_arrays, from_dataframe
    integ = from_arrays(x_train, y_train, x_val, y_val, classes=["benign", "malignant"])
    integ = from_dataframe(df, inputs=["age", "bmi"], target="outcome", subset="split")

Both build an ordinary :class:`~samplescope.Integration` with the public API
(batched input and ground-truth functions, one metadata column per data-frame
column that is not an input). The input kind follows the arrays' shape
(:mod:`samplescope.integration.inputs`): ``(N, F)`` vectors, ``(N, C, H, W)``,
``(N, H, W)`` or ``(N, H, W, 3)`` images (uint8 pictures are scaled to [0, 1]),
integer ``(N, T)`` with a ``vocabulary`` token ids.

**Reopening a run.** The arrays live only in the caller's memory, so a run made
from them keeps a copy: ``write_run`` saves each subset's inputs, targets and
metadata as ``.npy`` files in the run folder's ``arrays/`` (data, read with
``allow_pickle=False``), and ``run.json``'s ``integration.rebuild`` says so. Opening,
serving or reporting the run later rebuilds the same integration from those files,
running no code from the run folder (:func:`rebuild`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from samplescope.errors import IntegrationError

log = logging.getLogger(__name__)

MODULE = __name__
#: subsets a no-code integration can have, the names its arrays are saved under
SUBSETS = ("train", "validation", "test")


def from_arrays(
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    *,
    classes: Sequence[str] | None = None,
    x_test: Any = None,
    y_test: Any = None,
    name: str = "arrays",
    kind: str | None = None,
    feature_names: Sequence[str] | None = None,
    vocabulary: Sequence[str] | None = None,
    metadata: dict[str, dict[str, Any]] | None = None,
    task: Any = None,
) -> Any:
    """An integration over train and validation (and optionally test) arrays.

    ``y_*`` are class indices (ints), class names (strings: ``classes`` defaults to
    their sorted set) or, with a ``task`` other than classification, its targets.
    ``metadata`` is ``{subset: {column: (N,) array}}``, shown beside each sample.
    """
    data: dict[str, dict[str, np.ndarray]] = {}
    given = {"train": (x_train, y_train), "validation": (x_val, y_val)}
    if x_test is not None or y_test is not None:
        given["test"] = (x_test, y_test)
    for subset, (x, y) in given.items():
        if x is None or y is None:
            raise IntegrationError(f"from_arrays(): pass both x and y for subset {subset!r}.")
        data[subset] = {"x": _inputs(np.asarray(x), subset), "y": np.asarray(y)}
        if len(data[subset]["x"]) != len(data[subset]["y"]):
            raise IntegrationError(
                f"from_arrays(): subset {subset!r} has {len(data[subset]['x'])} inputs but "
                f"{len(data[subset]['y'])} targets; pass one target per input."
            )
    for subset, columns in (metadata or {}).items():
        if subset not in data:
            raise IntegrationError(f"from_arrays(): metadata for subset {subset!r}, which has no arrays.")
        for column, values in columns.items():
            v = np.asarray(values)
            if v.shape != (len(data[subset]["x"]),):
                raise IntegrationError(
                    f"from_arrays(): metadata column {column!r} of {subset!r} has shape {v.shape}; "
                    f"it needs one value per sample, shape ({len(data[subset]['x'])},)."
                )
            data[subset][f"meta_{column}"] = v
    shapes = {s: d["x"].shape[1:] for s, d in data.items()}
    if len(set(shapes.values())) > 1:
        raise IntegrationError(f"from_arrays(): every subset's inputs must have one shape, got {shapes}.")
    task_name = _task_name(task)
    if task_name == "classification":
        classes, data = _classes(classes, data)
    recipe = {
        "kind": "arrays", "name": name, "classes": list(classes) if classes is not None else None,
        "input": {"kind": kind, "feature_names": list(feature_names) if feature_names is not None else None,
                  "vocabulary": list(vocabulary) if vocabulary is not None else None},
        "task": task if isinstance(task, (str, type(None))) else task_name,
    }  # fmt: skip
    return _build(recipe, data)


def from_dataframe(
    df: Any,
    inputs: Sequence[str],
    target: str,
    *,
    subset: str | None = None,
    classes: Sequence[str] | None = None,
    name: str = "dataframe",
    validation_fraction: float = 0.2,
    seed: int = 0,
    task: Any = None,
) -> Any:
    """An integration over a pandas data frame: ``inputs`` columns are the vector, ``target`` the truth.

    ``subset`` names a column holding ``train``/``validation`` (``val``, ``test`` too) per
    row; without it a seeded random ``validation_fraction`` of the rows is validation.
    Every other column becomes metadata. Input columns must be numbers (one-hot encode
    categories first).
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise IntegrationError(f"from_dataframe(): df is a {type(df).__name__}; pass a pandas DataFrame.")
    missing = [c for c in [*inputs, target, *([subset] if subset else [])] if c not in df.columns]
    if missing:
        raise IntegrationError(
            f"from_dataframe(): columns {missing} are not in the data frame; it has {list(df.columns)}."
        )
    if not inputs:
        raise IntegrationError("from_dataframe(): inputs=[] names no columns; pass the feature columns.")
    bad = [c for c in inputs if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise IntegrationError(
            f"from_dataframe(): input columns {bad} are not numbers; one-hot encode them "
            "(pandas.get_dummies) or leave them out of inputs=[...] (they then show as metadata)."
        )
    if df[list(inputs)].isna().any().any():
        col = next(c for c in inputs if df[c].isna().any())
        row = df.index[df[col].isna()][0]
        raise IntegrationError(f"from_dataframe(): input column {col!r} is missing a value at row {row!r}; fill or drop it.")
    if subset:
        split = df[subset].astype(str).str.lower().replace({"val": "validation", "valid": "validation"})
        unknown = sorted(set(split) - set(SUBSETS))
        if unknown:
            raise IntegrationError(
                f"from_dataframe(): column {subset!r} holds {unknown}; use train, validation (or val) and test."
            )
    else:
        rng = np.random.default_rng(seed)
        is_val = rng.random(len(df)) < validation_fraction
        split = pd.Series(np.where(is_val, "validation", "train"), index=df.index)
    rest = [c for c in df.columns if c not in (*inputs, target, subset)]
    arrays: dict[str, Any] = {}
    meta: dict[str, dict[str, np.ndarray]] = {}
    for s in SUBSETS:
        part = df[(split == s).to_numpy()]
        if s != "test" and part.empty:
            raise IntegrationError(f"from_dataframe(): no rows for subset {s!r}; every run needs train and validation rows.")
        if part.empty:
            continue
        arrays[s] = (part[list(inputs)].to_numpy(np.float32), part[target].to_numpy())
        meta[s] = {c: _column(part[c]) for c in rest}
    return from_arrays(
        *arrays["train"], *arrays["validation"],
        x_test=arrays.get("test", (None,))[0], y_test=arrays.get("test", (None, None))[1],
        classes=classes, name=name, kind="vector", feature_names=[str(c) for c in inputs],
        metadata=meta, task=task,
    )  # fmt: skip


# --------------------------------------------------------------------------- building


def _build(recipe: dict[str, Any], data: dict[str, dict[str, np.ndarray]]) -> Any:
    """The Integration over ``data`` ({subset: {"x", "y", "meta_<column>"...}}) the recipe describes."""
    from samplescope import Batch, Integration, Subset

    kwargs: dict[str, Any] = {}
    if recipe.get("task") not in (None, "classification"):
        kwargs["task"] = recipe["task"]  # the task object's Integration(task=...) checks it
    integ = Integration(recipe["name"], classes=recipe.get("classes"), **kwargs)
    integ.source, integ.module = None, MODULE  # built by this module from data, not a user's file
    integ.rebuild = recipe
    integ.write_data = lambda folder: _save(Path(folder), data)

    def make(subset: str):
        @integ.subset(subset)
        def _subset(state: Any) -> Any:
            return Subset(ids=range(len(data[subset]["x"])), data=data[subset])

    for s in data:
        make(s)

    spec = recipe.get("input") or {}

    @integ.input("input", batched=True, kind=spec.get("kind"), feature_names=spec.get("feature_names"),
                 vocabulary=spec.get("vocabulary"))
    def encode(batch: Batch) -> np.ndarray:
        x = batch.data["x"][batch.indices]
        return x if x.dtype.kind in "iu" and spec.get("vocabulary") is not None else x.astype(np.float32)

    @integ.ground_truth_batched
    def target(batch: Batch) -> np.ndarray:
        return np.asarray(batch.data["y"][batch.indices])

    columns = sorted({k[5:] for d in data.values() for k in d if k.startswith("meta_")})
    if columns:
        @integ.metadata("columns", batched=True)
        def metadata(batch: Batch) -> dict[str, np.ndarray]:
            n = len(batch.indices)
            return {c: (batch.data[f"meta_{c}"][batch.indices] if f"meta_{c}" in batch.data
                        else np.full(n, None, dtype=object)) for c in columns}  # fmt: skip

    return integ


def _save(folder: Path, data: dict[str, dict[str, np.ndarray]]) -> None:
    """Each subset's arrays as ``arrays/<subset>.<name>.npy`` (no pickles: strings as fixed-width unicode)."""
    from samplescope.store import layout

    out = folder / layout.ARRAYS
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, list[str]] = {}
    for subset, arrays in data.items():
        index[subset] = list(arrays)
        for key, a in arrays.items():
            np.save(out / layout.ARRAYS_FILE.format(subset=subset, key=key), _plain(a), allow_pickle=False)
    (out / layout.ARRAYS_INDEX).write_text(json.dumps(index))


def replace_array(folder: Path, subset: str, key: str, values: np.ndarray) -> None:
    """Write (or add) one subset's array ``key`` (``y``, ``meta_<column>``) in a run's ``arrays/``,
    e.g. the labels a curated run was trained on (samplescope/curation.py)."""
    from samplescope.store import layout

    out = Path(folder) / layout.ARRAYS
    index = json.loads((out / layout.ARRAYS_INDEX).read_text())
    np.save(out / layout.ARRAYS_FILE.format(subset=subset, key=key), _plain(values), allow_pickle=False)
    if key not in index.setdefault(subset, []):
        index[subset].append(key)
    (out / layout.ARRAYS_INDEX).write_text(json.dumps(index))


def rebuild(run_path: str | Path, recipe: dict[str, Any]) -> Any:
    """The integration a run made from arrays was made with, from the ``.npy`` files in its folder."""
    from samplescope.store import layout

    folder = Path(run_path) / layout.ARRAYS
    try:
        index = json.loads((folder / layout.ARRAYS_INDEX).read_text())
        data = {
            s: {k: np.load(folder / layout.ARRAYS_FILE.format(subset=s, key=k), mmap_mode="r" if not k.startswith("meta_") else None,
                           allow_pickle=False) for k in keys}
            for s, keys in index.items()
        }  # fmt: skip
    except (OSError, ValueError) as exc:
        from samplescope.errors import RunError

        raise RunError(
            f"Run {run_path} was made from in-memory arrays, and its copy of them ({folder}) cannot be read "
            f"({exc}); make the run again with from_arrays()/from_dataframe()."
        ) from exc
    return _build(recipe, data)


# --------------------------------------------------------------------------- helpers


def _inputs(x: np.ndarray, subset: str) -> np.ndarray:
    """Inputs as the model takes them: images (N, C, H, W), vectors (N, F), token ids (N, T)."""
    if x.ndim < 2:
        raise IntegrationError(
            f"from_arrays(): the {subset} inputs have shape {x.shape}; pass one row per sample, e.g. (N, F) "
            "for features or (N, C, H, W) for images."
        )
    if x.dtype.kind not in "biuf":
        raise IntegrationError(f"from_arrays(): the {subset} inputs are {x.dtype}, not numbers.")
    if x.ndim == 3:  # (N, H, W) grey
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (3, 4) and x.shape[1] not in (1, 3, 4):  # (N, H, W, C) channels last
        x = np.moveaxis(x[..., :3], -1, 1)
    if x.ndim >= 4 and x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    return np.ascontiguousarray(x)


def _task_name(task: Any) -> str:
    if task is None:
        return "classification"
    return str(task if isinstance(task, str) else getattr(task, "name", task))


def _classes(classes: Sequence[str] | None, data: dict[str, dict[str, np.ndarray]]) -> tuple[list[str], Any]:
    """Class names, and every subset's targets as class indices into them."""
    ys = [d["y"] for d in data.values()]
    if all(y.dtype.kind in "iub" for y in ys):
        n = int(max(y.max(initial=0) for y in ys)) + 1
        names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(n)]
        low = min(int(y.min(initial=0)) for y in ys)
        if low < 0 or n > len(names):
            raise IntegrationError(
                f"from_arrays(): targets run from {low} to {n - 1} but there are {len(names)} classes; "
                "targets must be class indices 0..len(classes)-1."
            )
        return names, {s: {**d, "y": d["y"].astype(np.int64)} for s, d in data.items()}
    if all(y.dtype.kind in "USO" for y in ys):
        seen = sorted({str(v) for y in ys for v in y})
        names = [str(c) for c in classes] if classes is not None else seen
        lookup = {c: i for i, c in enumerate(names)}
        unknown = [v for v in seen if v not in lookup]
        if unknown:
            raise IntegrationError(f"from_arrays(): targets {unknown[:5]} are not in classes={names}.")
        return names, {s: {**d, "y": np.array([lookup[str(v)] for v in d["y"]], np.int64)} for s, d in data.items()}
    raise IntegrationError(
        f"from_arrays(): classification targets must be class indices or names, got {ys[0].dtype}; for "
        "numeric targets pass task='regression'."
    )


def _column(series: Any) -> np.ndarray:
    """A data-frame column as a metadata array (numbers stay numbers, anything else strings)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy()
    return series.astype(str).to_numpy(dtype=str)


def _plain(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(str) if a.dtype.kind == "O" else a

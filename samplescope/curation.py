"""Feed decisions back into training: new labels for some samples, others left out.

    integ = curate("mnist", relabel="relabel-7.csv", exclude=["mislabeled"], tags_from="runs/v1")
    train_run(integ, "runs/v2")          # what `samplescope train --relabel ... --exclude ...` does

:func:`curate` wraps an integration in a :class:`CuratedIntegration`: the same dataset
(same name, source and hash, so ``compare`` matches the runs sample by sample) whose
ground truth says the new label for each relabelled sample, everywhere (training,
validation, the run's table, the analysis). Excluded samples are left out of training
only: they stay in the run, analysed and on the map, so ``compare`` shows what the new
model does with them. Each sample's fate is the run's ``curation`` column (``kept``,
``relabelled``, ``excluded``) and run.json's ``curation`` records what was changed.

Samples are named by ``(subset, key)``, the integration's own key, so decisions made on
one run apply to a run of another ``--limit``. A file (CSV, Parquet or JSON, like those
that ``samplescope`` exports) names them by ``subset`` and ``key`` columns, or by
``sample_id`` (read against the new run's own ids, which equal the old run's for the same
integration and ``--limit``). A relabel file has a ``new_label`` column (a class name or
index). Tags come from a run (``tags_from``): ``exclude=["mislabeled"]`` names tags, and
``relabel="tag:relabel:*"`` takes every tag ``relabel:X`` as "these samples are class X".
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from samplescope.errors import NotFoundError, ParameterError
from samplescope.integration.core import Integration

log = logging.getLogger(__name__)

#: the run's column saying what curation did to each sample
COLUMN = "curation"
SampleKey = tuple[str, str]  # (subset, key)


class CuratedIntegration(Integration):
    """An integration with some labels replaced and some training samples left out.

    Built by :func:`curate`; everything else (inputs, metadata, visualizers, identity)
    is the wrapped integration's own.
    """

    base: Integration
    relabel: dict[SampleKey, int]
    exclude: frozenset[SampleKey]
    record: dict[str, Any]

    @classmethod
    def wrap(cls, base: Integration, relabel: dict[SampleKey, int], exclude: frozenset[SampleKey],
             record: dict[str, Any]) -> CuratedIntegration:  # fmt: skip
        out = cls.__new__(cls)
        out.__dict__.update(base.__dict__)  # the same dataset: name, source, functions, state
        out.base, out.relabel, out.exclude, out.record = base, relabel, exclude, record
        out._positions = {}
        if base.write_data is not None:  # a no-code integration: the run's copy must hold the new labels
            out.write_data = out._write_curated_data
        return out

    def _write_curated_data(self, folder: Any) -> None:
        """The base's arrays, then each subset's labels as relabelled and its ``curation`` column, so
        the run reopened from its ``arrays/`` copy has the labels it was trained and analysed with."""
        from samplescope.integrations.arrays import replace_array

        self.base.write_data(folder)
        for subset in self.subset_names:
            every = np.arange(len(self.get_subset(subset)))
            if any(key[0] == subset for key in self.relabel):
                replace_array(Path(folder), subset, "y", self.encode_labels(subset, every))
            replace_array(Path(folder), subset, f"meta_{COLUMN}", self.compute_metadata(subset, every)[COLUMN])

    def _keys(self, subset: str, indices: Sequence[int] | np.ndarray) -> list[SampleKey]:
        ids = self.get_subset(subset).ids
        return [(subset, str(ids[int(i)])) for i in indices]

    def encode_labels(self, subset: str, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        labels = self.base.encode_labels(subset, indices).copy()
        if self.relabel:
            for row, key in enumerate(self._keys(subset, indices)):
                new = self.relabel.get(key)
                if new is not None:
                    labels[row] = new
        return labels

    def compute_metadata(self, subset: str, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        columns = self.base.compute_metadata(subset, indices)
        fate = ["excluded" if k in self.exclude else "relabelled" if k in self.relabel else "kept"
                for k in self._keys(subset, indices)]  # fmt: skip
        columns[COLUMN] = np.asarray(fate, dtype=object)
        return columns

    def training_keep(self, n: int) -> np.ndarray:
        """(n,) bool: which of the first ``n`` training samples are trained on."""
        if not self.exclude:
            return np.ones(n, bool)
        return np.asarray([k not in self.exclude for k in self._keys("train", np.arange(n))], bool)


def training_rows(integ: Integration, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The training arrays without the excluded samples (unchanged for a plain integration)."""
    if not isinstance(integ, CuratedIntegration) or not integ.exclude:
        return x, y
    keep = integ.training_keep(len(y))
    log.info("training without %d excluded samples (%d left)", int((~keep).sum()), int(keep.sum()))
    integ.record["exclude"]["train_samples_left_out"] = int((~keep).sum())
    return x[keep], y[keep]


def record_of(integ: Integration) -> dict[str, Any] | None:
    """What run.json records under ``curation`` (None for a plain integration)."""
    return integ.record if isinstance(integ, CuratedIntegration) else None


# --- building one ------------------------------------------------------------------------------


def curate(
    integration: str | Path | Integration,
    *,
    relabel: str | Path | None = None,
    exclude: Sequence[str | Path] = (),
    tags_from: Any = None,
) -> Integration:
    """``integration`` with the labels of ``relabel`` and without the ``exclude`` samples in training.

    ``relabel``: a file with ``new_label`` (and ``subset`` + ``key``, or ``sample_id``), or
    ``tag:PATTERN`` for the tags of ``tags_from`` named ``relabel:X`` that match (e.g.
    ``tag:relabel:*``). ``exclude``: tag names of ``tags_from``, or files naming samples.
    ``tags_from``: the run (path or open run) whose tags are meant. Returns the integration
    itself when there is nothing to change.
    """
    from samplescope.integration.loader import load_integration

    base = integration if isinstance(integration, Integration) else load_integration(integration)
    if isinstance(base, CuratedIntegration):
        base = base.base
    if relabel is None and not exclude:
        return base
    source = _Source(base, tags_from)
    record: dict[str, Any] = {}
    new_labels: dict[SampleKey, int] = {}
    if relabel is not None:
        if base.task.name != "classification":
            raise ParameterError(f"--relabel gives new class labels; integration {base.name!r} is "
                                 f"{base.task.name}, not classification.")  # fmt: skip
        new_labels, how = source.relabels(str(relabel))
        record["relabel"] = {"from": how, "samples": len(new_labels),
                             "by_new_label": _count_by(new_labels.values(), base.classes)}  # fmt: skip
    left_out: set[SampleKey] = set()
    named = []
    for item in exclude:
        keys, how = source.samples(str(item))
        left_out |= keys
        named.append(how)
    if exclude:
        by_subset = pd.Series([s for s, _ in left_out], dtype=object).value_counts().to_dict()
        record["exclude"] = {"from": named, "samples": len(left_out), "by_subset": by_subset,
                             "note": "left out of training only; every subset keeps them in the run"}  # fmt: skip
    if tags_from is not None:
        record["tags_from"] = str(source.run.path)
    return CuratedIntegration.wrap(base, new_labels, frozenset(left_out), record)


class _Source:
    """Reads samples named in files or tags, as ``(subset, key)``, checked against the integration."""

    def __init__(self, integ: Integration, tags_from: Any) -> None:
        from samplescope.run import as_run

        self.integ = integ
        self.run = as_run(tags_from) if tags_from is not None else None
        self._known: dict[str, set[str]] = {}

    def samples(self, spec: str) -> tuple[set[SampleKey], str]:
        """The samples of a tag of ``tags_from`` (``NAME`` or ``tag:NAME``), or of a file."""
        path = Path(spec)
        if not spec.startswith("tag:") and path.suffix.lower() in (".csv", ".parquet", ".json"):
            frame = _read(path)
            return set(self._keys_of(frame, str(path))), f"file {path.name}"
        name = spec.removeprefix("tag:")
        return set(self._tag_keys(name)), f"tag {name}"

    def relabels(self, spec: str) -> tuple[dict[SampleKey, int], str]:
        if spec.startswith("tag:"):
            pattern = spec[4:]
            run = self._require_run(spec)
            names = [t for t in run.annotations.tags() if fnmatch.fnmatchcase(t, pattern) and t.startswith("relabel:")]
            if not names:
                raise NotFoundError(f"--relabel {spec}: run {run.path} has no tag relabel:X matching "
                                    f"{pattern!r}; its tags are {sorted(run.annotations.tags())}.")  # fmt: skip
            out: dict[SampleKey, int] = {}
            for name in names:
                label = self._class(name.split(":", 1)[1], f"tag {name!r}")
                out.update(dict.fromkeys(self._tag_keys(name), label))
            return out, f"tags {', '.join(names)}"
        path = Path(spec)
        frame = _read(path)
        if "new_label" not in frame.columns:
            raise ParameterError(f"--relabel {path}: no new_label column (columns: {list(frame.columns)}); "
                                 "export a relabel:X tag, or add new_label (a class name or index).")  # fmt: skip
        keys = self._keys_of(frame, str(path))
        labels = [self._class(v, f"{path.name} row {i + 2}") for i, v in enumerate(frame["new_label"])]
        return dict(zip(keys, labels, strict=True)), f"file {path.name}"

    def _require_run(self, spec: str):
        if self.run is None:
            raise ParameterError(f"{spec!r} names tags; say which run holds them with --tags-from RUN "
                                 "(tags_from= in Python), or give a file.")  # fmt: skip
        return self.run

    def _tag_keys(self, name: str) -> list[SampleKey]:
        run = self._require_run(name)
        ids = run.tagged(name)
        rows = run.samples(columns=["subset", "key"], where=[("sample_id", "in", ids.tolist())]) if len(ids) else \
            pd.DataFrame({"subset": [], "key": []})
        return self._checked(list(zip(rows["subset"].astype(str), rows["key"].astype(str), strict=True)),
                             f"tag {name!r} of run {run.path}")  # fmt: skip

    def _keys_of(self, frame: pd.DataFrame, where: str) -> list[SampleKey]:
        if {"subset", "key"} <= set(frame.columns):
            keys = list(zip(frame["subset"].astype(str), frame["key"].astype(str), strict=True))
        elif "sample_id" in frame.columns:
            keys = [self._key_of_id(int(i), where) for i in frame["sample_id"]]
        else:
            raise ParameterError(f"{where}: name the samples with subset and key columns, or sample_id "
                                 f"(columns: {list(frame.columns)}).")  # fmt: skip
        return self._checked(keys, where)

    def _key_of_id(self, sample_id: int, where: str) -> SampleKey:
        start = 0
        for subset in self.integ.subset_names:
            n = len(self.integ.get_subset(subset))
            if start <= sample_id < start + n:
                return subset, str(self.integ.get_subset(subset).ids[sample_id - start])
            start += n
        raise NotFoundError(f"{where}: sample_id {sample_id} is past the integration's {start} samples.")

    def _checked(self, keys: list[SampleKey], where: str) -> list[SampleKey]:
        for subset, key in keys:
            if subset not in self.integ.subset_names:
                raise NotFoundError(f"{where}: subset {subset!r} is not one of integration {self.integ.name!r}'s "
                                    f"{self.integ.subset_names}.")  # fmt: skip
            if subset not in self._known:
                self._known[subset] = {str(k) for k in self.integ.get_subset(subset).ids}
            if key not in self._known[subset]:
                raise NotFoundError(f"{where}: no sample with key {key!r} in subset {subset!r} of integration "
                                    f"{self.integ.name!r}.")  # fmt: skip
        return keys

    def _class(self, value: Any, where: str) -> int:
        classes = self.integ.classes
        text = str(value).strip()
        if text in classes:
            return classes.index(text)
        if text.lstrip("-").isdigit() and 0 <= int(text) < len(classes):
            return int(text)
        raise ParameterError(f"{where}: new label {value!r} is neither a class name nor an index below "
                             f"{len(classes)}; classes: {', '.join(classes)}.")  # fmt: skip


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise NotFoundError(f"No file {path}; export one from the page or with `run.export(...)`.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype={"key": str, "subset": str, "new_label": str})
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".json":
            return pd.read_json(path, dtype={"key": str, "subset": str, "new_label": str})
    except (ValueError, OSError) as exc:
        raise ParameterError(f"{path} cannot be read as {suffix[1:]} ({exc}).") from exc
    raise ParameterError(f"{path}: give a .csv, .parquet or .json file.")


def _count_by(labels: Any, classes: list[str]) -> dict[str, int]:
    counts = pd.Series(list(labels), dtype="int64").value_counts().sort_index()
    return {classes[int(k)]: int(v) for k, v in counts.items()}

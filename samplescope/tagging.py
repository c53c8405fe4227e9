"""`samplescope tag`: tag (or untag) the samples an insight, a saved selection or a list names.

The page tags a selection with a click and Python with ``run.tag(ids, name)``; this is
the same write from the command line, so the MNIST loop (tag the flagged mislabels,
retrain with ``--exclude``) needs no code::

    samplescope tag runs/v1 mislabeled --insight mislabel --subset train
    samplescope tag runs/v1                      # list tags and saved selections

Tags live in the run's annotations (``samplescope/store/annotations.py``), apart from
the analysis, and every write is atomic under the annotations lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from samplescope.errors import NotFoundError, ParameterError
from samplescope.ids import parse_id


def tag_samples(
    run: Any,
    name: str | None,
    *,
    insight: str | None = None,
    selection: str | None = None,
    ids: str | None = None,
    subset: str | None = None,
    remove: bool = False,
) -> Iterator[str]:
    """Tag the named samples with ``name`` (or untag them); yields the lines to print.

    With no ``name``: the run's tags and saved selections with their sizes.
    """
    from samplescope.run import as_run

    run = as_run(run)
    if name is None:
        if insight or selection or ids or remove:
            raise ParameterError("samplescope tag: name the tag to write (samplescope tag RUN NAME --insight KIND).")
        yield from _listing(run)
        return
    named = _named_ids(run, insight=insight, selection=selection, ids=ids)
    if named is None and not remove:
        raise ParameterError(
            f"samplescope tag: which samples should carry {name!r}? Pass --insight KIND, --selection NAME "
            "or --ids 1,2,3 (or --remove to take the tag off every sample)."
        )
    if named is not None and subset is not None:
        named = _in_subset(run, named, subset)
    if remove:
        kept = run.untag(name, named)
        what = "every sample" if named is None else f"{len(named):,} samples"
        yield f"removed tag {name!r} from {what}; {kept:,} samples keep it"
        return
    size = run.tag(named, name)
    yield f"tagged {len(named):,} samples {name!r}; the tag now has {size:,} samples"


def _listing(run: Any) -> Iterator[str]:
    tags = run.tags()
    selections = run.selections()
    if tags.empty and not selections:
        yield f"{run.path}: no tags or saved selections yet (samplescope tag RUN NAME --insight KIND)"
        return
    for row in tags.itertuples():
        yield f"tag        {row.tag}  {row.count:,} samples"
    for sel in selections:
        note = f"  ({sel.note})" if sel.note else ""
        yield f"selection  {sel.name}  {len(sel):,} samples{note}"


def _named_ids(run: Any, *, insight: str | None, selection: str | None, ids: str | None) -> np.ndarray | None:
    if insight is not None:
        from samplescope.analysis.insights.base import KINDS

        if insight not in KINDS:
            raise ParameterError(
                f"samplescope tag: --insight {insight!r} is not an insight kind; use one of {', '.join(KINDS)}."
            )
        found = run.insights(kind=insight)
        if not found:
            kinds = sorted({i.kind for i in run.insights()})
            raise NotFoundError(
                f"samplescope tag: run {run.path} has no insight of kind {insight!r}; "
                f"its insights are of kinds {', '.join(kinds) or '(none)'}."
            )
        return np.unique(np.concatenate([np.asarray(i.sample_ids, dtype=np.int64) for i in found]))
    if selection is not None:
        return run.selection(selection).ids
    if ids is not None:
        return _parse_ids(ids, len(run))
    return None


def _parse_ids(text: str, n: int) -> np.ndarray:
    out = []
    for part in text.split(","):
        if not part.strip():
            continue
        value = parse_id(part, upper=n - 1)
        if value is None:
            raise ParameterError(
                f"samplescope tag: --ids {part.strip()!r} is not a sample id of this run; ids are integers "
                f"0 to {n - 1}, comma-separated (--ids 3,17,42)."
            )
        out.append(value)
    if not out:
        raise ParameterError("samplescope tag: --ids names no sample; pass ids comma-separated (--ids 3,17,42).")
    return np.unique(np.asarray(out, dtype=np.int64))


def _in_subset(run: Any, ids: np.ndarray, subset: str) -> np.ndarray:
    subsets = list(run.subsets)
    if subset not in subsets:
        raise ParameterError(
            f"samplescope tag: --subset {subset!r} is not a subset of this run; use one of {', '.join(subsets)}."
        )
    rows = run.samples(columns=["sample_id", "subset"], where=[("sample_id", "in", ids.tolist())])
    return np.sort(rows.loc[rows["subset"] == subset, "sample_id"].to_numpy(np.int64))

"""Encode an integration's subsets: whole arrays for training, a bounded stream for analysis.

``encode_subset`` holds a whole subset (training keeps its data resident);
``input_batches`` streams every subset in bounded batches, which is what
``analyze`` reads once to feed inference, the pixel sketches and Grad-CAM
(``fit_sketches``: their principal axes, from one seeded sample of inputs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from samplescope.integration.core import Integration

log = logging.getLogger(__name__)


def subset_sizes(integration: Integration, limit: int | None = None) -> dict[str, int]:
    """How many samples of each subset a run uses (the first ``limit`` of each, if given)."""
    sizes = {}
    for name in integration.subset_names:
        n = len(integration.get_subset(name))
        sizes[name] = n if limit is None else min(n, limit)
    return sizes


def encode_subset(
    integration: Integration, subset: str, n: int, batch_size: int = 4096, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, *shape) float32 and labels as the task encodes them (classification: (n,)
    int64, -1 when unlabeled; see :meth:`samplescope.tasks.Task.encode_labels`)."""
    xs, ys = [], []
    for start in tqdm(range(0, n, batch_size), desc=f"encode {subset}", disable=not progress, leave=False):
        idx = np.arange(start, min(start + batch_size, n))
        xs.append(integration.encode_inputs(subset, idx))
        ys.append(_labels(integration, subset, idx))
    return np.concatenate(xs), np.concatenate(ys)


#: rows a chunk of the samples table holds before it is written (a 10M-sample run's table is
#: written 262,144 rows at a time, never whole in memory)
CHUNK_ROWS = 262_144


def samples_table(
    integration: Integration, sizes: dict[str, int], batch_size: int = 4096, progress: bool = False,
    chunk_rows: int | None = None,
    labels: dict[str, np.ndarray] | None = None,
) -> Iterator[pd.DataFrame]:
    """One row per sample (ids, subset, index, key, label and every metadata column), as
    DataFrames of at most about ``chunk_rows`` (default ``CHUNK_ROWS``) rows in sample_id
    order, for ``RunDatabase.write_samples``. ``labels``: a subset's labels as the task
    encodes them (``encode_subset``'s), taken instead of encoding them again."""
    chunk_rows = chunk_rows or CHUNK_ROWS
    batch_size = max(1, min(batch_size, chunk_rows))
    frames: list[pd.DataFrame] = []
    held = 0
    offset = 0
    total = sum(sizes.values())
    bar = tqdm(total=total, desc="metadata", unit="sample", disable=not progress, leave=False)
    for subset, n in sizes.items():
        ids = integration.get_subset(subset).ids
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(start + batch_size, n))
            cols = {
                "sample_id": offset + idx,
                "subset": subset,
                "index": idx,
                "key": [str(ids[i]) for i in idx],
                # the task's label columns: `label` (and, multi-label, label_0 .. label_{C-1})
                **integration.task.label_columns(
                    labels[subset][idx] if labels and subset in labels else _labels(integration, subset, idx),
                    integration.classes,
                ),
            }
            for name, values in integration.compute_metadata(subset, idx).items():
                if name in cols:  # a metadata column named like a built-in one
                    if np.array_equal(np.asarray(cols[name]), np.asarray(values)):
                        continue
                    name = f"meta_{name}"
                cols[name] = values
            frames.append(pd.DataFrame(cols))
            held += len(idx)
            bar.update(len(idx))
            if held >= chunk_rows:
                yield pd.concat(frames, ignore_index=True)
                frames, held = [], 0
        offset += n
    bar.close()
    if frames:
        yield pd.concat(frames, ignore_index=True)


def _labels(integration: Integration, subset: str, idx: np.ndarray) -> np.ndarray:
    if subset == "unlabeled":
        return integration.task.unlabeled(len(idx), integration.classes)
    return integration.encode_labels(subset, idx)


def input_batches(
    integration: Integration, sizes: dict[str, int], batch_size: int = 2048
) -> Iterator[tuple[int, str, np.ndarray, np.ndarray]]:
    """``(start, subset, index, inputs)`` in sample_id order, ``batch_size`` samples at a time.

    ``start`` is the first batch row's sample_id. Nothing is kept between batches, so the
    memory of the stream is one batch whatever the number of samples.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; input_batches needs at least 1")
    offset = 0
    for subset, n in sizes.items():
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(start + batch_size, n))
            yield offset + start, subset, idx, integration.encode_inputs(subset, idx)
        offset += n


def sample_inputs(integration: Integration, sizes: dict[str, int], n: int, seed: int = 0) -> np.ndarray:
    """Inputs of ``n`` seeded random samples across every subset (fewer when there are fewer)."""
    total = sum(sizes.values())
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(total, min(n, total), replace=False))
    starts = np.cumsum([0, *sizes.values()])
    parts = []
    for i, subset in enumerate(sizes):
        inside = rows[(rows >= starts[i]) & (rows < starts[i + 1])] - starts[i]
        if len(inside):
            parts.append(integration.encode_inputs(subset, inside))
    return np.concatenate(parts)


def fit_sketches(
    integration: Integration, sizes: dict[str, int], n: int, seed: int, input_shape: Any = None
) -> tuple[Any, Any]:
    """The pass's two pixel sketches, fitted on the inputs of ``n`` seeded samples (encoded once):
    the :class:`~samplescope.analysis.sketch.PixelSketch` of the raw inputs and, for image inputs,
    the :class:`~samplescope.analysis.insights.aligned.AlignedSketch` (None otherwise). The
    sample is the rows the duplicate finder would draw itself with the same seed, so its
    results do not depend on who made the sketches."""
    from samplescope.analysis.insights.aligned import AlignedSketch, is_image_shape
    from samplescope.analysis.sketch import PixelSketch

    sample = sample_inputs(integration, sizes, n, seed)
    pixels = PixelSketch(random_state=seed).fit(sample)
    shape = tuple(input_shape) if input_shape else None
    aligned = AlignedSketch(shape, random_state=seed).fit(sample) if is_image_shape(shape) else None
    return pixels, aligned

"""Row-parallel stages after the per-sample pass: where an engine runs them.

Some work after the pass is the same function applied to every row of large arrays,
each row independent of the others: the kNN queries of every row against an index
fitted on the driver (:class:`~samplescope.analysis.neighbors.NeighborIndex`'s graph,
for the latent and for the duplicate finder's pixel sketches), and placing every row on
a UMAP / t-SNE map fitted on the driver (:class:`~samplescope.analysis.projection.Projection`:
the placement's neighbour weights; PCA's transform is a (D, 2) product per row, cheaper
on the driver than sending the rows away). Those modules call :func:`map_rows`;
by default it runs the function here, over all rows at once, exactly as before; inside
``with row_stages(mapper)`` (the Ray engine's, for the rest of ``analyze``) a large enough
call goes to the mapper instead, which cuts the rows into chunks and runs them elsewhere
(Ray Data), with the same results.

    rows, dist = map_rows(search, n, arrays=(), align=8192, what="kNN graph")
    # search(start, stop, *chunks) -> tuple of (stop - start, ...) arrays

This module imports nothing heavy: the analysis modules import it freely.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["map_rows", "row_stages"]

RowFn = Callable[..., tuple[np.ndarray, ...]]
#: an engine's mapper: ``mapper(fn, n, arrays, align, what)`` -> the outputs for rows 0 .. n-1, or None
#: when it declines (too few rows, no cluster): then the rows are computed here
Mapper = Callable[[RowFn, int, Sequence[np.ndarray], int, str], "tuple[np.ndarray, ...] | None"]

_mapper: Mapper | None = None


def map_rows(fn: RowFn, n: int, arrays: Sequence[np.ndarray] = (), align: int = 1,
             what: str = "rows") -> tuple[np.ndarray, ...]:
    """``fn(start, stop, *[a[start:stop] for a in arrays])`` over rows ``0 .. n - 1``, joined.

    ``fn`` returns a tuple of arrays with ``stop - start`` rows each. Here (no engine's
    mapper active, or it declines) it is one call over every row. An engine cuts the rows
    into chunks of a multiple of ``align`` rows (a function that batches internally gives
    the same batches either way). ``what`` names the stage in progress bars and logs."""
    if _mapper is not None and n > 0:
        out = _mapper(fn, n, arrays, max(1, int(align)), what)
        if out is not None:
            return out
    return tuple(fn(0, n, *[a[0:n] for a in arrays]))


@contextmanager
def row_stages(mapper: Mapper) -> Iterator[None]:
    """Send :func:`map_rows` calls to ``mapper`` inside the block (one at a time: not re-entrant)."""
    global _mapper
    before, _mapper = _mapper, mapper
    try:
        yield
    finally:
        _mapper = before


def active() -> Any:
    """The mapper in use, or None (for tests and summaries)."""
    return _mapper

"""Blocks of the samples table kept in memory, for ``/api/samples/<id>``.

The page asks for one sample's row on every click. Read from DuckDB that is a query of its
own, 3.6 ms of CPU on the 70k MNIST run, most of the route's 4.7 ms: on two busy cores the
read thread waited for the CPU and the interpreter lock that long many times over (the
route's p99 was its handler's, ``bench/serve_speed.py --phases``). Here a miss reads the
block of ``BLOCK`` ids around the sample in one query (numpy columns, about 6 ms of CPU for
4,096 rows) and keeps it; a hit is a dictionary of Python values built from the block, a few
tens of microseconds. The server's prewarm reads the first blocks, as many as fit in
``max_bytes`` (``Settings.row_cache_bytes``); past it blocks are dropped, least recently
used first: the 70k run fits in 30 MB, a 1M run's 245 blocks do not and its clicks read a
block more often.

A row from here equals :meth:`RunDatabase.row`'s (NULL as None, NaN, infinities and -0.0
kept, integers as ``int``): tests/server/test_rowcache.py compares them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

#: sample ids per block (ids are rows 0..N-1)
BLOCK = 4096


class _Block:
    """Columns of the ids ``first`` to ``first + BLOCK - 1``: values, masks (NULLs) and where each id sits."""

    def __init__(self, first: int, columns: dict[str, Any]) -> None:
        self.names = list(columns)
        self.values = [np.ma.getdata(c) for c in columns.values()]
        self.masks = [
            np.ma.getmaskarray(c) if np.ma.isMaskedArray(c) and np.ma.getmask(c) is not np.ma.nomask else None
            for c in columns.values()
        ]
        ids = np.ma.getdata(columns["sample_id"]).astype(np.int64) - first
        self.at = np.full(BLOCK, -1, np.int64)
        inside = (ids >= 0) & (ids < BLOCK)
        self.at[ids[inside]] = np.flatnonzero(inside)
        self.nbytes = sum(v.nbytes for v in self.values) + sum(m.nbytes for m in self.masks if m is not None)
        self.nbytes += sum(sum(len(s) for s in v if isinstance(s, str)) for v in self.values if v.dtype == object)

    def row(self, offset: int) -> dict[str, Any] | None:
        i = int(self.at[offset])
        if i < 0:
            return None
        return {
            name: None if mask is not None and mask[i] else values.item(i)
            for name, values, mask in zip(self.names, self.values, self.masks, strict=True)
        }


class RowCache:
    """``row(sample_id)`` from blocks that ``fetch(first, last)`` reads (every column, numpy,
    ``sample_id`` among them); at most ``max_bytes`` of blocks kept. Thread-safe."""

    def __init__(self, fetch: Callable[[int, int], dict[str, Any]], max_bytes: int) -> None:
        self._fetch = fetch
        self.max_bytes = max_bytes
        self._blocks: OrderedDict[int, _Block] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.reads = 0  # blocks read, for tests and the bench

    def row(self, sample_id: int) -> dict[str, Any] | None:
        """Every column of ``sample_id`` as plain Python values; None when there is no such row."""
        first = sample_id - sample_id % BLOCK
        with self._lock:
            block = self._blocks.get(first)
            if block is not None:
                self._blocks.move_to_end(first)
        if block is None:
            block = _Block(first, self._fetch(first, first + BLOCK - 1))  # outside the lock
            self._keep(first, block)
        return block.row(sample_id - first)

    def fill(self, n: int) -> int:
        """Read the blocks of ids 0 to ``n - 1`` in order while they fit in ``max_bytes`` (the
        server's prewarm: the first clicks find their rows in memory); the blocks read."""
        read = 0
        for first in range(0, n, BLOCK):
            with self._lock:
                if first in self._blocks:
                    continue
                room = self.max_bytes - self._bytes
            block = _Block(first, self._fetch(first, first + BLOCK - 1))
            if block.nbytes > room:  # it would push out a block read before it
                break
            self._keep(first, block)
            read += 1
        return read

    def _keep(self, first: int, block: _Block) -> None:
        with self._lock:
            self.reads += 1
            old = self._blocks.pop(first, None)
            if old is not None:  # another thread read it meanwhile
                self._bytes -= old.nbytes
            self._blocks[first] = block
            self._bytes += block.nbytes
            while self._bytes > self.max_bytes and len(self._blocks) > 1:
                _, dropped = self._blocks.popitem(last=False)
                self._bytes -= dropped.nbytes

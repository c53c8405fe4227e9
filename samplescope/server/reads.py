"""The read lane: a few threads of the server's own for the reads the page makes on every
click (``/api/samples/<id>``), apart from the thread pool that every other sync route shares.

A sync FastAPI route goes to that shared pool (anyio's, 40 threads) three times: its
dependencies, its handler and the check of its answer, and each time it waits for a free
thread and then for the event loop to pick the result up. On two busy cores those waits,
not the 4 ms of work, were most of the route's p99 (``bench/serve_speed.py --phases``). A
route on this lane goes once: the whole answer, JSON included, is made on one of its threads.

    body = await request.app.state.reads.run(fn, *args)    # fn(*args) on a read thread
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class ReadLane:
    """``threads`` threads for short reads (0: on the event loop); no queue bound or timeout
    (the work is small).

    The threads start with the first read; :meth:`close` (the app's shutdown) stops them, and
    a read after it starts new ones (an app may be started and stopped more than once)."""

    def __init__(self, threads: int = 2) -> None:
        if threads < 0:
            raise ValueError(f"a read lane has 0 threads (reads on the event loop) or more, not {threads}")
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a read thread, in a copy of this context (as anyio's pool does);
        with 0 threads on the event loop itself (no hop; the loop waits for the read)."""
        if self.threads == 0:
            return fn(*args)
        context = contextvars.copy_context()
        return await asyncio.wrap_future(self._threads().submit(context.run, fn, *args))

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="samplescope-read")
            return self._pool

"""Heavy work (heatmaps, aggregates, similars of a set) in small bounded lanes.

A lane is a few worker threads and a short queue: at most ``workers`` jobs of a lane run
at once, at most ``queue`` more wait, and a request waits at most ``timeout`` seconds
for its answer. So a burst of heavy requests is answered ``503`` instead of piling up,
and the cheap routes (a sample's row, its picture, the map) keep their threads and cores.

    lane = Lane("heatmap", workers=1, queue=32, timeout=30.0)
    value = await lane.run(compute, sample_id)      # BusyError (503) when full or too slow

A job that runs past its timeout cannot be stopped (Python threads cannot be killed): its
request is answered 503 at once, and the job keeps its worker until it ends, so the lane
stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from samplescope.errors import BusyError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Lane:
    """``workers`` threads for one kind of heavy job, with a bounded queue and a timeout."""

    def __init__(self, name: str, *, workers: int, queue: int, timeout: float) -> None:
        if workers < 1 or queue < 0 or timeout <= 0:
            raise ValueError(f"lane {name!r}: workers >= 1, queue >= 0 and timeout > 0 are needed")
        self.name = name
        self.workers = workers
        self.queue = queue
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"samplescope-{name}")
        self._lock = threading.Lock()
        self._pending = 0  # jobs running or waiting

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on one of the lane's threads; BusyError when full or too slow."""
        with self._lock:
            if self._pending >= self.workers + self.queue:
                raise BusyError(
                    f"the server is busy: {self._pending} {self.name} requests are running or "
                    f"waiting, the most it takes at once ({self.workers} running + {self.queue} "
                    "waiting, settings heavy_workers and heavy_queue); retry in a moment"
                )
            self._pending += 1
        try:
            future: Future[T] = self._pool.submit(fn, *args, **kwargs)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:
            future.cancel()  # only stops a job still waiting; a running one finishes
            raise BusyError(
                f"this {self.name} request took longer than {self.timeout:g} s (settings "
                "heavy_timeout) and was abandoned; retry later or ask for less (fewer bins, "
                "ids or a cheaper method)"
            ) from None

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

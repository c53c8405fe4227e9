"""Heavy work (heatmaps, aggregates, similars of a set) in small bounded lanes.

A lane is a few workers and a short queue: at most ``workers`` jobs of a lane run at once,
at most ``queue`` more wait, and a request waits at most ``timeout`` seconds for its
answer. So a burst of heavy requests is answered ``503`` instead of piling up.

Two kinds of lane, one interface:

- :class:`ProcessLane` (what ``samplescope serve`` uses): each worker is a process of its
  own (spawned, one job at a time), pinned to ``cpus`` cores (the last ones this process
  may use) and run at a lower priority (``nice``), with one thread each for torch, BLAS
  and OpenMP. The server's own process keeps its interpreter lock and its cores for the
  cheap routes (a sample's row, its picture, a table page): measured with
  ``bench/serve_speed.py``, heavy work in threads of the server's process held the lock
  long enough to push ``/api/samples/<id>`` past 200 ms at p99. A job that runs past its
  timeout is stopped: its worker process is killed and a new one starts on the next job
  (unless the worker has not answered a job yet: it is still starting, and is left to).
- :class:`Lane`: worker threads of this process (a Python thread cannot be stopped, so a
  job past its timeout keeps its worker until it ends; the lane stays bounded).

    lane = ProcessLane("heatmap", workers=1, queue=32, timeout=30.0)
    value = await lane.run(compute, state, sample_id)    # BusyError (503) when full or too slow

A job is a module-level function (or a method of the server state) and arguments that
pickle; the server state among them (any object with a ``worker_spec``) is sent as its
spec, and the worker calls the function with its own state of the same run, opened once
per worker and reopened when the run is analysed again. A job that does not pickle (a
lambda, a closure), or a state whose run cannot be reopened in another process (a run
opened with an in-memory integration or model), runs in the lane's threads instead.
Errors raised by the job (ParameterError, NotFoundError, ...) reach the request as they
would in-process.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import multiprocessing
import os
import pickle
import queue as queues
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from samplescope.errors import BusyError

log = logging.getLogger(__name__)
T = TypeVar("T")
#: how often a worker process checks that the server that started it still runs
PARENT_POLL_SECONDS = 1.0


class Lane:
    """``workers`` threads for one kind of heavy job, with a bounded queue and a timeout."""

    #: what runs the jobs, for logs and tests
    kind = "thread"

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
    def ready(self) -> bool:
        """Whether a job sent now runs without waiting for a worker to start (threads: always)."""
        return True

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on one of the lane's workers; BusyError when full or too slow."""
        job, stop = self._prepare(fn, args, kwargs)
        self._admit()
        try:
            future: Future[T] = self._pool.submit(job)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:  # (wait_for cancelled the future: a job still waiting never starts)
            stop()
            raise self._too_slow() from None

    def _prepare(
        self, fn: Callable[..., T], args: tuple, kwargs: dict
    ) -> tuple[Callable[[], T], Callable[[], None]]:
        """What the lane's thread runs, and what stops it once it runs past the timeout: a
        thread cannot be stopped, so a running job keeps its thread until it ends."""
        return functools.partial(fn, *args, **kwargs), _nothing

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The same as :meth:`run`, blocking and not counted, for threads outside the event
        loop (the prewarm)."""
        job, _ = self._prepare(fn, args, kwargs)
        return self._pool.submit(job).result(self.timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def release(self) -> None:
        """Stop this lane's threads, leaving any worker processes it shares (see ProcessLane)."""
        self.close()

    def _admit(self) -> None:
        with self._lock:
            if self._pending >= self.workers + self.queue:
                raise BusyError(
                    f"the server is busy: {self._pending} {self.name} requests are running or "
                    f"waiting, the most it takes at once ({self.workers} running + {self.queue} "
                    "waiting, settings heavy_workers and heavy_queue); retry in a moment"
                )
            self._pending += 1

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

    def _too_slow(self) -> BusyError:
        return BusyError(
            f"this {self.name} request took longer than {self.timeout:g} s (settings "
            "heavy_timeout) and was abandoned; retry later or ask for less (fewer bins, "
            "ids or a cheaper method)"
        )


# --- worker processes -----------------------------------------------------------------------


@dataclass(frozen=True)
class StateSpec:
    """What a worker process needs to open the same run as the server: picklable.

    ``open`` is a module-level function ``open(spec) -> state`` (``ServerState.from_spec``'s
    wrapper); ``tag`` changes when the run is analysed again, so the worker reopens it."""

    open: Callable[[StateSpec], Any]
    path: str
    tag: str
    args: tuple[Any, ...] = ()


class _StateArg:
    """Stands for the worker's own state in a job's arguments."""

    def __reduce__(self) -> str:
        return "STATE_ARG"


STATE_ARG = _StateArg()


def _spec_of(value: Any) -> StateSpec | None:
    spec = getattr(value, "worker_spec", None)
    return spec if isinstance(spec, StateSpec) else None


class ProcessLane(Lane):
    """A lane whose ``workers`` are processes: pinned to ``cpus`` cores, ``nice``-d, killable.

    A worker process starts on the first job (or :meth:`call`) and stays for the life of
    this process: lanes of the same name and size share it (a server that reopens its run,
    or many apps in one test session, start no new ones); it opens the run a job names once
    and keeps it open. A job that does not pickle runs in the lane's thread, as in
    :class:`Lane`."""

    kind = "process"

    def __init__(
        self, name: str, *, workers: int, queue: int, timeout: float, cpus: int = 1, nice: int = 10
    ) -> None:
        super().__init__(name, workers=workers, queue=queue, timeout=timeout)
        self.cpus = cpus
        self.nice = nice
        self._slots: queues.SimpleQueue[int] = queues.SimpleQueue()  # one per worker thread
        for slot in range(workers):
            self._slots.put(slot)
        self._warned: set[str] = set()
        self.restarts = 0  # worker processes killed (a job past its timeout) or lost

    @property
    def pids(self) -> set[int]:
        """Process ids of this lane's live worker processes."""
        return {w.pid for w in map(self._existing, range(self.workers)) if w is not None}

    @property
    def ready(self) -> bool:
        """Whether every worker process of this lane is up and has answered a job (until then a
        job waits for its process to start: about 0.7 s for a 10M run's compute worker)."""
        workers = [self._existing(slot) for slot in range(self.workers)]
        return all(w is not None and w.warm for w in workers)

    def release(self) -> None:
        """Stop this lane's threads but leave its worker processes to the other lanes of the
        same name and size (a lane made only to start a worker early)."""
        super().close()

    def close(self) -> None:
        """Stop this lane's worker processes (the next job starts new ones)."""
        super().close()
        for slot in range(self.workers):
            worker = self._existing(slot)
            if worker is not None:
                _discard(self._key(slot), worker)

    # --- internals ----------------------------------------------------------------------------

    def _key(self, slot: int) -> tuple[str, int, int, int]:
        return (self.name, slot, self.cpus, self.nice)

    def _existing(self, slot: int) -> _Worker | None:
        with _workers_lock:
            return _workers.get(self._key(slot))

    def _prepare(
        self, fn: Callable[..., T], args: tuple, kwargs: dict
    ) -> tuple[Callable[[], T], Callable[[], None]]:
        """The job for a worker process, stopped by killing that process; or, when it does not
        pickle, for the lane's thread (as in :class:`Lane`)."""
        payload = self._payload(fn, args, kwargs)
        if payload is None:
            return super()._prepare(fn, args, kwargs)
        job = _Job(payload)
        return functools.partial(self._in_process, job), job.abandon

    def _payload(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> bytes | None:
        """The job pickled for a worker, or None when it must run in this process."""
        spec = next((s for s in map(_spec_of, (getattr(fn, "__self__", None), *args)) if s), None)
        if spec is None:
            return None
        owner = getattr(fn, "__self__", None)
        target: Any = fn.__name__ if _spec_of(owner) is not None else fn
        sent = tuple(STATE_ARG if _spec_of(a) is spec else a for a in args)
        try:
            return pickle.dumps((spec, target, sent, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            name = getattr(fn, "__qualname__", repr(fn))
            if name not in self._warned:
                self._warned.add(name)
                log.warning("%s lane: %s runs in a thread of the server (%s)", self.name, name, exc)
            return None

    def _in_process(self, job: _Job) -> Any:
        """On a worker thread: the job in its slot's process, started on first use."""
        slot = self._slots.get()
        key = self._key(slot)
        worker = None
        try:
            worker = _worker(key)
            future = job.submit(worker, lambda: self._stop(key, worker))
            try:
                value = future.result()
            except BrokenProcessPool:
                raise
            except BaseException:  # the job's own error: the worker answered
                worker.warm = True
                raise
            worker.warm = True
            return value
        except _Abandoned:  # timed out before it reached a process
            raise self._too_slow() from None
        except BrokenProcessPool:
            if worker is not None:
                self._restart(key, worker)
            if job.abandoned:
                raise self._too_slow() from None
            raise BusyError(
                f"the {self.name} worker process ended before answering (out of memory, or "
                "killed); a new one starts with the next request; retry in a moment"
            ) from None
        finally:
            job.done()
            self._slots.put(slot)

    def _stop(self, key: tuple[str, int, int, int], worker: _Worker) -> None:
        """A job ran past its timeout: kill its worker, unless that worker has not answered a
        job yet. Its first job opens the run and loads the libraries (and the model), which on
        a loaded machine took longer than the timeout; killed each time, it never got warm and
        every heatmap was a 503. It is left to finish (the request is answered 503 all the same)."""
        if not worker.warm:
            log.warning(
                "a heavy job ran past its timeout while its worker process %d was starting; "
                "the worker is left to finish starting",
                worker.pid,
            )
            return
        log.warning("a heavy job ran past its timeout: its worker process %d is stopped", worker.pid)
        self._restart(key, worker)

    def _restart(self, key: tuple[str, int, int, int], worker: _Worker) -> None:
        """Kill ``worker`` and forget it (the next job of its slot starts a new one), once."""
        if _discard(key, worker):
            self.restarts += 1


@dataclass
class _Worker:
    """One worker process: a single-process pool, its process id (to kill it), and whether it
    has answered a job (before that it is opening the run and loading libraries)."""

    pool: ProcessPoolExecutor
    pid: int
    warm: bool = False


_workers: dict[tuple[str, int, int, int], _Worker] = {}
_workers_lock = threading.Lock()
_starting: dict[tuple[str, int, int, int], threading.Lock] = {}


def _worker(key: tuple[str, int, int, int]) -> _Worker:
    """The live worker process of ``key`` (lane name, slot, cpus, nice), started when there is none."""
    with _workers_lock:
        found = _workers.get(key)
        starting = _starting.setdefault(key, threading.Lock())
    if found is not None:
        return found
    with starting:  # one start per key; other keys start meanwhile
        with _workers_lock:
            found = _workers.get(key)
        if found is not None:
            return found
        name, _, cpus, nice = key
        pool = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded server
            initializer=_init_worker,
            initargs=(name, cpus, nice),
        )
        pid = pool.submit(os.getpid).result()  # starts it, and names it for a kill
        with _workers_lock:
            _workers[key] = worker = _Worker(pool, pid)
    log.info("%s lane: worker process %d started", name, pid)
    return worker


def _discard(key: tuple[str, int, int, int], worker: _Worker) -> bool:
    """Kill ``worker`` and drop it from the registry; False when that was done already."""
    with _workers_lock:
        found = _workers.get(key) is worker
        if found:
            del _workers[key]
    if found:
        _kill(worker.pid)
        worker.pool.shutdown(wait=False, cancel_futures=True)
    return found


@atexit.register
def _kill_workers() -> None:
    with _workers_lock:
        pids = [w.pid for w in _workers.values()]
    for pid in pids:
        _kill(pid)


class _Abandoned(Exception):
    """A job that timed out before it was sent to a worker process."""


class _Job:
    """One job on its way to a worker process; :meth:`abandon` kills the process running it."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.abandoned = False
        self._stop: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def submit(self, worker: _Worker, stop: Callable[[], None]) -> Future[Any]:
        """Send the job to ``worker``; ``stop()`` kills and forgets it (on :meth:`abandon`)."""
        with self._lock:
            if self.abandoned:  # timed out while this thread started its process
                raise _Abandoned
            self._stop = stop
            return worker.pool.submit(_work, self.payload)

    def abandon(self) -> None:
        with self._lock:
            self.abandoned = True
            stop = self._stop
        if stop is not None:  # at once, so the next job never meets the dying process
            stop()

    def done(self) -> None:
        with self._lock:
            self._stop = None


def _nothing() -> None:
    pass


def _kill(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --- in the worker process ------------------------------------------------------------------

_state: tuple[StateSpec, Any] | None = None
_nice = 0
_limited: set[str] = set()  # the libraries _single_threaded set to one thread


def _init_worker(name: str, cpus: int, nice: int) -> None:
    """A worker's settings: its cores, its priority, one thread per numeric library."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    if hasattr(os, "sched_getaffinity") and cpus > 0:
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) > cpus:
            os.sched_setaffinity(0, set(allowed[-cpus:]))  # the last cores: the first stay free
    global _nice
    _nice = nice  # applied after the first job (see _lower_priority)
    # the parent's ^C stops the server, which stops its workers; they do not print tracebacks
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.current_thread().name = f"samplescope-{name}-worker"
    # a worker holds its own end of the job queue, so it never sees the server go: it watches
    # (a server killed, or a test session that ends without shutting its lanes, leaves none)
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this worker process soon after ``parent`` (the server) ends."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(0)


def _work(payload: bytes) -> Any:
    """Run one job: ``fn(state, ...)`` or ``state.method(...)`` on this worker's state of the run."""
    global _state
    spec, target, args, kwargs = pickle.loads(payload)
    if _state is None or _state[0] != spec:
        if _state is not None:  # the run was analysed again: close the old one first (DuckDB
            _close(_state[1])  # keeps one database per path in a process)
            _state = None
        _state = (spec, spec.open(spec))
    state = _state[1]
    fn = getattr(state, target) if isinstance(target, str) else target
    try:
        return fn(*(state if a is STATE_ARG else a for a in args), **kwargs)
    finally:
        _single_threaded()
        _lower_priority()


def _lower_priority() -> None:
    """``nice`` the worker, once, after its first job: start-up, opening the run and loading
    the libraries and the model (the prewarm's heatmap) at a low priority on a busy machine
    could take longer than any request waits."""
    global _nice
    if _nice > 0 and hasattr(os, "nice"):
        os.nice(_nice)
    _nice = 0


def _single_threaded() -> None:
    """One thread for torch and the BLAS libraries a job loaded, once each. Nothing is imported
    for it: a worker whose jobs need no model (aggregates, similars of a set) never loads torch
    (about 180 MiB)."""
    torch = sys.modules.get("torch")
    if torch is not None and "torch" not in _limited:
        torch.set_num_threads(1)
        _limited.add("torch")
    if "threadpoolctl" not in _limited and any(m in sys.modules for m in ("numpy", "scipy", "faiss")):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover
            return
        threadpool_limits(1)
        _limited.add("threadpoolctl")


def _close(state: Any) -> None:
    try:
        state.run.close()
    except Exception:  # an old run that will not close is no reason to stop
        log.debug("closing the old run failed", exc_info=True)

"""Where the time of one route's requests goes inside the server: ``serve_speed.py --phases``.

Imported by the server process the bench starts (never by samplescope itself). It wraps the
app in an ASGI layer that times every request of one route (``/api/samples/<id>`` by
default) from the moment the app sees it to its last body byte, and records inside it:

- each hop to a thread (``run_in_threadpool``: FastAPI's sync dependencies, sync handlers,
  response validation; or ``ServerState.sample_executor``): submitted -> the thread starts
  (waiting for a free thread and for the interpreter lock) -> it ends -> the event loop
  resumes the request (waiting for the loop);
- the wait for the run database's cursor lock (``RunDatabase._lock``);
- the CPU the threads used (``time.thread_time``).

Beside them, the event loop's lag (a 5 ms sleep that wakes late) and, whenever the loop has
not come round for 50 ms, what its thread was running (a stack sampled from a watchdog
thread). ``GET /__phases`` answers all of it as JSON; :func:`report` summarises it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import re
import statistics
import sys
import threading
import time
import traceback
from typing import Any

#: the request being timed (anyio copies the context into its worker threads)
CURRENT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("phase_record", default=None)
#: when the event loop read the bytes that made the current request (uvicorn's protocol's
#: ``data_received``; the request's task is created inside it and copies this context)
ARRIVED: contextvars.ContextVar[float] = contextvars.ContextVar("phase_arrived", default=0.0)
RECORDS: list[dict] = []
LAGS: list[tuple[float, float]] = []  # (when, how late in s) for wake-ups over 2 ms late
GC: list[tuple[int, float, float]] = []  # (generation, when, seconds) of each garbage collection
STALLS: list[dict] = []
_beat = {"t": 0.0, "ticks": 0}
STALL_SECONDS = 0.05


def install(route: str = r"^/api/samples/\d+$") -> None:
    """Time every thread hop of a request (call before ``create_app``)."""
    import fastapi.dependencies.utils
    import fastapi.routing
    from starlette import concurrency

    original = concurrency.run_in_threadpool

    async def timed(func: Any, *args: Any, **kwargs: Any) -> Any:
        return await _hop(original, func, *args, **kwargs)

    for module in (concurrency, fastapi.routing, fastapi.dependencies.utils):
        module.run_in_threadpool = timed  # type: ignore[attr-defined]
    try:  # the read lane (samplescope/server/reads.py), where the server has one
        from samplescope.server import reads
    except ImportError:
        pass
    else:
        lane_run = reads.ReadLane.run

        async def timed_lane(self: Any, func: Any, *args: Any) -> Any:
            return await _hop(functools.partial(lane_run, self), func, *args)

        reads.ReadLane.run = timed_lane  # type: ignore[method-assign]
    global ROUTE
    ROUTE = re.compile(route)
    _stamp_arrivals()
    _time_collections()


def _time_collections() -> None:
    """Time every garbage collection (it holds the interpreter lock: every thread waits)."""
    import gc

    started: dict[str, float] = {}

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started["t"] = time.perf_counter()
        elif "t" in started:
            t = started.pop("t")
            GC.append((info["generation"], t, time.perf_counter() - t))

    gc.callbacks.append(callback)


def _stamp_arrivals() -> None:
    """Stamp ARRIVED in uvicorn's HTTP protocols' ``data_received`` (h11's and httptools')."""
    import importlib

    for module, name in (
        ("uvicorn.protocols.http.h11_impl", "H11Protocol"),
        ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol"),
    ):
        try:
            cls = getattr(importlib.import_module(module), name)
        except ImportError:  # httptools not installed
            continue
        original = cls.data_received

        def data_received(self: Any, data: bytes, _original: Any = original) -> None:
            ARRIVED.set(time.perf_counter())
            _original(self, data)

        cls.data_received = data_received


async def _hop(runner: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
    """``await runner(func, *args, **kwargs)``, its times added to the timed request's hops."""
    rec = CURRENT.get()
    if rec is None:
        return await runner(func, *args, **kwargs)
    submitted = time.perf_counter()
    box: dict[str, float] = {}

    def run(*a: Any, **k: Any) -> Any:
        box["start"] = time.perf_counter()
        c0 = time.thread_time()
        try:
            return func(*a, **k)
        finally:
            box["cpu"] = time.thread_time() - c0
            box["end"] = time.perf_counter()

    try:
        return await runner(run, *args, **kwargs)
    finally:
        name = getattr(func, "__name__", None) or getattr(
            getattr(func, "func", None), "__name__", "?"
        )
        rec["hops"].append(
            (name, submitted, box.get("start", submitted), box.get("end", submitted),
             box.get("cpu", 0.0), time.perf_counter())
        )  # fmt: skip


ROUTE = re.compile(r"^/api/samples/\d+$")


class TimedLock:
    """A lock that adds its acquire wait to the timed request's ``lock`` seconds."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        t = time.perf_counter()
        self._lock.acquire()
        rec = CURRENT.get()
        if rec is not None:
            rec["lock"] += time.perf_counter() - t

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def time_db_lock(app: Any) -> None:
    """Replace the served run's database cursor lock with a timed one."""
    db = app.state.samplescope.state.run.db
    db._lock = TimedLock(db._lock)


class Phases:
    """ASGI wrapper: times the route's requests, answers ``GET /__phases``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._started = False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if not self._started:
            self._started = True
            asyncio.get_running_loop().create_task(_lag_monitor())
            threading.Thread(target=_watchdog, args=(threading.get_ident(),), daemon=True).start()
        if scope["type"] == "http" and scope["path"] == "/__phases":
            body = json.dumps(
                {"records": RECORDS, "lags": LAGS, "stalls": STALLS, "ticks": _beat["ticks"], "gc": GC}
            ).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return None
        if scope["type"] != "http" or not ROUTE.match(scope["path"]):
            return await self.app(scope, receive, send)
        rec: dict[str, Any] = {"t0": time.perf_counter(), "hops": [], "lock": 0.0,
                               "read": ARRIVED.get()}  # fmt: skip
        for key, value in scope["headers"]:
            if key == b"x-bench-sent":  # a probe of bench/serve_clients.py: its send time
                rec["sent"] = value.decode()
        token = CURRENT.set(rec)

        async def timed_send(message: dict) -> None:
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if last:
                rec["t1"] = time.perf_counter()
            await send(message)
            if last:  # uvicorn has handed the answer to the transport
                rec["t2"] = time.perf_counter()

        try:
            await self.app(scope, receive, timed_send)
        finally:
            CURRENT.reset(token)
            rec.setdefault("t1", time.perf_counter())
            RECORDS.append(rec)
        return None


async def _lag_monitor() -> None:
    while True:
        t = time.perf_counter()
        _beat["t"] = t
        _beat["ticks"] += 1
        await asyncio.sleep(0.005)
        late = time.perf_counter() - t - 0.005
        if late > 0.002:
            LAGS.append((t, late))


def _watchdog(loop_thread: int) -> None:
    """When the loop has not ticked for STALL_SECONDS, what its thread runs (once per stall)."""
    seen = 0
    while True:
        time.sleep(0.01)
        beat = _beat["ticks"]
        if time.perf_counter() - _beat["t"] > STALL_SECONDS and beat != seen:
            seen = beat
            frame = sys._current_frames().get(loop_thread)
            stack = traceback.extract_stack(frame)[-8:] if frame is not None else []
            STALLS.append({
                "t": _beat["t"],
                "stack": [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}" for f in stack],
            })  # fmt: skip


# --- in the bench process -------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def probe_report(data: dict, probes: list[list[float]]) -> list[str]:
    """Where each probe's time went, from its send to its last byte received (one clock: the
    machine's monotonic one, shared by the bench's processes and the server's):

    - ``to the loop``: sent -> the server's event loop read its bytes (the kernel, and the
      loop busy with other callbacks or not scheduled);
    - ``parse + start``: read -> the app is called (uvicorn's parser, the request's task
      waiting its turn on the loop);
    - ``handler``: the app's own time (the phases above);
    - ``write``: the last body message handed to the transport;
    - ``to the client``: the transport -> the probe has every byte (the kernel, the probe's
      process scheduled).
    """
    by_sent = {rec["sent"]: rec for rec in data["records"] if "sent" in rec}
    rows = []
    for sent, received in probes:
        rec = by_sent.get(repr(sent))
        if rec is None or not rec.get("read") or "t2" not in rec:
            continue
        rows.append({
            "client side": received - sent, "to the loop": rec["read"] - sent,
            "parse + start": rec["t0"] - rec["read"], "handler": rec["t1"] - rec["t0"],
            "write": rec["t2"] - rec["t1"], "to the client": received - rec["t2"],
        })  # fmt: skip
    if not rows:
        return [f"probe phases: none of {len(probes)} probes matched a server record"]
    slow = sorted(rows, key=lambda r: r["client side"])[-max(1, len(rows) // 100) :]
    out = [f"the probe's requests, send to receive ({len(rows)} of {len(probes)} matched):"]
    for key in rows[0]:
        values = [r[key] * 1000 for r in rows]
        out.append(
            f"  {key:16s} p50 {pct(values, 50):8.1f} ms  p99 {pct(values, 99):8.1f} ms  "
            f"mean in the slowest 1% {statistics.fmean(r[key] for r in slow) * 1000:8.1f} ms"
        )
    return out


def report(data: dict, client_ms: list[float], seconds: float) -> list[str]:
    """Lines that say where the route's time went: p50/p99 of each phase, and the slowest 1%."""
    rows = []
    for rec in data["records"]:
        hops = rec["hops"]
        total = (rec["t1"] - rec["t0"]) * 1000
        wait_thread = sum(h[2] - h[1] for h in hops) * 1000
        run = sum(h[3] - h[2] for h in hops) * 1000
        cpu = sum(h[4] for h in hops) * 1000
        wait_loop = sum(h[5] - h[3] for h in hops) * 1000
        rows.append({
            "total": total, "hops": len(hops), "thread wait": wait_thread, "in thread": run,
            "thread cpu": cpu, "lock wait": rec["lock"] * 1000, "loop wait": wait_loop,
            "rest (on loop)": total - wait_thread - run - wait_loop,
        })  # fmt: skip
    if not rows:
        return ["phases: no timed requests"]
    names = ", ".join(sorted({h[0] for r in data["records"] for h in r["hops"]}))
    hops = statistics.fmean(r["hops"] for r in rows)
    out = [
        f"phases of the timed route, server side ({len(rows)} requests; {hops:.1f} hops each: {names}):"
    ]
    out.append(
        f"  {'client side':16s} p50 {pct(client_ms, 50):8.1f} ms  p99 {pct(client_ms, 99):8.1f} ms"
    )
    slow = sorted(rows, key=lambda r: r["total"])[-max(1, len(rows) // 100) :]
    for key in (
        "total",
        "thread wait",
        "in thread",
        "thread cpu",
        "lock wait",
        "loop wait",
        "rest (on loop)",
    ):
        values = [r[key] for r in rows]
        out.append(
            f"  {key:16s} p50 {pct(values, 50):8.1f} ms  p99 {pct(values, 99):8.1f} ms  "
            f"mean in the slowest 1% {statistics.fmean(r[key] for r in slow):8.1f} ms"
        )
    lags = [lag * 1000 for _, lag in data["lags"]]
    ticks = max(1, data["ticks"])
    out.append(
        f"  event loop: {ticks:,} ticks of 5 ms; {len(lags)} woke over 2 ms late (p50 {pct(lags, 50):.1f} ms, "
        f"p99 {pct(lags, 99):.1f} ms, max {max(lags, default=0):.1f} ms); "
        f"{sum(1 for v in lags if v > 50)} stalls over 50 ms ({len(data['stalls'])} sampled)"
    )
    for gen in (0, 1, 2):
        pauses = [d * 1000 for g, _, d in data.get("gc", []) if g == gen]
        if pauses:
            out.append(
                f"  garbage collections of generation {gen}: {len(pauses)}, p50 {pct(pauses, 50):.1f} ms, "
                f"max {max(pauses):.1f} ms, {sum(pauses):.0f} ms in all"
            )
    tops: dict[str, int] = {}
    for stall in data["stalls"]:
        where = next(
            (s for s in reversed(stall["stack"]) if "samplescope" in s or "routes" in s), None
        )
        key = where or (stall["stack"][-1] if stall["stack"] else "?")
        tops[key] = tops.get(key, 0) + 1
    for where, count in sorted(tops.items(), key=lambda kv: -kv[1])[:6]:
        out.append(f"    loop thread in {where}: {count} stalls")
    return out

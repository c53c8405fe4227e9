"""The clients of bench/serve_speed.py, in processes of their own, on a cheap HTTP client.

The bench used to run its 20 clients, the worst requests and its measurements in one
process, on httpx: on two cores shared with the server that process's own Python (about a
millisecond of CPU per request for the client library, one interpreter lock for every
client) was part of every figure it took (its loop woke up to 48 ms late at p99). Here:

- :class:`Connection`: HTTP/1.1 keep-alive over asyncio streams, a request written as one
  line of bytes and the answer read by ``Content-Length`` (or chunks); no client library;
- the **load** process: ``clients`` clients over the routes, one after another without
  pause, and the worst allowed requests beside them, each on its own connection;
- the **probe** process: one client that asks ``/api/samples/<id>`` every ``gap`` seconds,
  alone in its process, so its figure is the server's answer time (and the kernel's), not
  the load's clients waiting for their own interpreter. Each probe request carries an
  ``x-bench-sent`` header (its send time on the machine's monotonic clock) that the server's
  phase timer (bench/serve_phases.py) joins with the times it saw the request.

Run by serve_speed.py as ``python bench/serve_clients.py < JOB.json`` (see :func:`main`); it
prints one JSON object with every latency in seconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """(status, body); one retry on a fresh connection when a kept one was closed."""
        for attempt in (0, 1):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                return await self._exchange(method, target, body, headers or {})
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(
        self, method: str, target: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {target} HTTP/1.1", f"host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method not in ("GET", "HEAD"):
            lines.append(f"content-length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {}
        for line in header_lines:
            if line:
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
        if "content-length" in fields:
            data = await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            data = b"".join(parts)
        elif status in (204, 304) or method == "HEAD":
            data = b""
        else:  # until the server closes
            data = await self.reader.read()
            fields["connection"] = "close"
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def route_target(kind: str, rng: random.Random, n: int, n_classes: int, k: int) -> str:
    sid = rng.randrange(n)
    return {
        "sample": f"/api/samples/{sid}",
        "image": f"/api/samples/{sid}/image.png",
        "similar": f"/api/samples/{sid}/similar?k={k}",
        "table": f"/api/samples?sort=loss&order=desc&limit=50&offset={rng.randrange(n)}",
        "heatmap": f"/api/samples/{sid}/heatmap.png?target={rng.randrange(n_classes)}",
    }[kind]


async def _wait_until(start: float) -> None:
    await asyncio.sleep(max(0.0, start - time.perf_counter()))


async def _lag_monitor(deadline: float, into: list[float]) -> None:
    """This process's own event loop: how late a 5 ms sleep wakes (its lag is in its figures)."""
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        await asyncio.sleep(0.005)
        into.append(time.perf_counter() - t - 0.005)


async def run_load(job: dict) -> dict:
    """``clients`` clients over ``routes`` and the ``worst`` requests, from ``start`` to ``deadline``."""
    host, port = job["host"], job["port"]
    routes, n, n_classes, k = job["routes"], job["n"], job["n_classes"], job["k"]
    worst = job["worst"]  # [name, method, target, body (latin-1 str), headers]
    latencies: dict[str, list[float]] = {r: [] for r in routes}
    latencies.update({w[0]: [] for w in worst})
    errors: list[str] = []
    busy: dict[str, int] = {}
    lags: list[float] = []
    await _wait_until(job["start"])
    deadline = job["deadline"]

    async def call(conn: Connection, kind: str, method: str, target: str, body: bytes, headers: dict) -> None:
        t = time.perf_counter()
        try:
            status: int | str = (await conn.request(method, target, body, headers))[0]
        except (OSError, asyncio.IncompleteReadError) as exc:
            status = type(exc).__name__
            conn.close()
        latencies[kind].append(time.perf_counter() - t)
        if status == 503:
            busy[kind] = busy.get(kind, 0) + 1
        elif status not in (200, 304):
            errors.append(f"{kind} {target[:80]}: {status}")

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = Connection(host, port)
        turn = seed
        while time.perf_counter() < deadline:
            kind = routes[turn % len(routes)]
            turn += 1
            await call(conn, kind, "GET", route_target(kind, rng, n, n_classes, k), b"", {})
        conn.close()

    async def heavy(name: str, method: str, target: str, body: str, headers: dict) -> None:
        rng = random.Random(name)
        conn = Connection(host, port)
        data = body.encode("latin-1")
        while time.perf_counter() < deadline:  # one after another, without pause
            await call(conn, name, method, target.replace("{sid}", str(rng.randrange(n))), data, headers)
        conn.close()

    await asyncio.gather(
        _lag_monitor(deadline, lags),
        *(client(job["seed"] + i) for i in range(job["clients"])),
        *(heavy(*w) for w in worst),
    )
    latencies["(load client lag)"] = lags
    return {"latencies": latencies, "errors": errors, "busy": busy}


async def run_probe(job: dict) -> dict:
    """One client alone: ``/api/samples/<id>`` every ``gap`` seconds, each with its send time."""
    conn = Connection(job["host"], job["port"])
    rng = random.Random(job["seed"])
    times: list[float] = []
    records: list[list[float]] = []  # [sent, received] of each probe, on the monotonic clock
    errors: list[str] = []
    lags: list[float] = []
    await _wait_until(job["start"])
    deadline = job["deadline"]
    monitor = asyncio.ensure_future(_lag_monitor(deadline, lags))
    while time.perf_counter() < deadline:
        target = f"/api/samples/{rng.randrange(job['n'])}"
        t = time.perf_counter()
        try:
            status = (await conn.request("GET", target, headers={"x-bench-sent": repr(t)}))[0]
        except (OSError, asyncio.IncompleteReadError) as exc:
            status = type(exc).__name__  # type: ignore[assignment]
            conn.close()
        done = time.perf_counter()
        times.append(done - t)
        records.append([t, done])
        if status != 200:
            errors.append(f"probe {target}: {status}")
        await asyncio.sleep(max(0.0, job["gap"] - (time.perf_counter() - t)))
    await monitor
    conn.close()
    return {"latencies": {"probe": times, "(probe client lag)": lags}, "records": records, "errors": errors}


def main() -> None:
    """``serve_clients.py < JOB.json``: ``{"role": "load" | "probe", "host", "port", "start",
    "deadline", ...}`` (start and deadline on ``time.perf_counter``'s clock, CLOCK_MONOTONIC,
    which every process of the machine shares)."""
    job = json.loads(sys.stdin.read())
    runner = run_load if job["role"] == "load" else run_probe
    print(json.dumps(asyncio.run(runner(job))))


if __name__ == "__main__":
    main()

"""How fast `samplescope serve` is on an analysed run. Prints figures; asserts nothing.

    python bench/serve_speed.py runs/mnist [--clients 20] [--seconds 30] [--no-browser] [--heavy both]

Measures, against the real server (``samplescope.server.serve``) in a subprocess on
loopback:

- startup: process start -> first answer from /api/run (heavy libraries load lazily);
- the map payload: bytes, bytes per point, time to fetch it;
- navigation -> every point drawn, in headless Chromium (``window.__mapDrawnAt``);
- the first similar and heatmap (the heavy libraries load lazily or in a prewarm thread);
- latency p50/p99 per route with N concurrent clients for T seconds (a sample's row, its
  picture, its similars, a table page, a Grad-CAM PNG), while the worst requests the
  server's limits allow run beside them without pause (an aggregate of MAX_GROUPS series
  x MAX_BINS bins, similars of MAX_SET_IDS ids with k=MAX_K, a selection of MAX_IDS ids,
  an Integrated Gradients heatmap); the errors, the 503s of the bounded heavy lanes, and
  the load average beside the figures (the target: p99 of /api/samples/<id> under 200 ms);
- the server's resident memory after the load (psutil), its worker processes included.

By default it does this twice, one server after the other: heavy work in threads of the
server's process (the reference) and in worker processes (what ``samplescope serve``
does, see samplescope/server/heavy.py), and prints the ratio of every p50 and p99 with the
load average beside it (``--heavy`` picks one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from samplescope.server import limits
from samplescope.testing import free_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


#: the server ``samplescope serve`` runs, with heavy work in worker processes or in threads
SERVER = """
import sys, uvicorn
from pathlib import Path
from samplescope.server import Settings, create_app
run, port, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
settings = Settings(run_path=run, port=port, heavy_processes=mode == "processes")
app = create_app(run, settings)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def start_server(run: Path, port: int, mode: str) -> tuple[subprocess.Popen, float, float | None]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(run), str(port), mode], env=env)
    url = f"http://127.0.0.1:{port}/api/run"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc, time.perf_counter() - t0, cpu_seconds(proc.pid)
        except httpx.HTTPError:
            pass
        time.sleep(0.02)


def cpu_seconds(pid: int) -> float | None:
    """CPU time the process has used: startup cost independent of other load on the machine."""
    try:
        import psutil
    except ImportError:
        return None
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def bench_browser(base: str, repeats: int = 3) -> list[tuple[float, str, int]]:
    from playwright.sync_api import sync_playwright

    path = os.environ.get("SAMPLESCOPE_CHROMIUM") or shutil.which("chromium")
    if not path:
        print("browser: skipped (no chromium; set SAMPLESCOPE_CHROMIUM)")
        return []
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        for _ in range(repeats):
            context = browser.new_context(viewport={"width": 1400, "height": 860})
            page = context.new_page()
            page.goto(base + "/")
            page.wait_for_function("window.__mapDrawnAt !== undefined", timeout=60_000)
            drawn = page.evaluate("window.__mapDrawnAt")  # ms since navigation start
            m = page.locator("[data-testid=map]")
            out.append(
                (drawn, m.get_attribute("data-renderer"), int(m.get_attribute("data-point-count")))
            )
            context.close()
        browser.close()
    return out


#: the routes the clients call, in turn
ROUTES = ("sample", "image", "similar", "table", "heatmap")


def route_url(kind: str, rng: random.Random, n: int, n_classes: int, k: int) -> str:
    sid = rng.randrange(n)
    return {
        "sample": f"/api/samples/{sid}",
        "image": f"/api/samples/{sid}/image.png",
        "similar": f"/api/samples/{sid}/similar?k={k}",
        "table": f"/api/samples?sort=loss&order=desc&limit=50&offset={rng.randrange(n)}",
        "heatmap": f"/api/samples/{sid}/heatmap.png?target={rng.randrange(n_classes)}",
    }[kind]


def worst_requests(base: str, n: int) -> list[tuple[str, str, dict]]:
    """The heaviest requests within the server's limits: (name, method + url, request kwargs)."""
    doc = httpx.get(base + "/openapi.json", timeout=60).json()

    def enum(path: str, name: str) -> list[str]:
        op = doc["paths"][path]["get"]
        return next(p for p in op["parameters"] if p["name"] == name)["schema"]["enum"]

    info = httpx.get(base + "/api/run").json()
    numeric = {c["name"] for c in info["columns"] if c["kind"] == "numeric"}
    x = "loss" if "loss" in numeric else min(numeric)

    def groups(column: str) -> int:  # distinct values, as an aggregate over it counts them
        params = {"x": column, "y": "count", "bins": limits.MAX_BINS}
        return len(httpx.get(base + "/api/aggregate", params=params, timeout=120).json()["data"])

    by = max((c for c in enum("/api/aggregate", "by") if c), key=groups)
    ids = ",".join(str(i) for i in range(min(n, limits.MAX_SET_IDS)))
    return [
        ("aggregate", f"GET /api/aggregate?x={x}&by={by}&bins={limits.MAX_BINS}", {}),
        ("similar-set", f"GET /api/similar?ids={ids}&k={limits.MAX_K}", {}),
        (
            "selection",
            "POST /api/selection",
            {"json": {"ids": list(range(min(n, limits.MAX_IDS)))}},
        ),
        # a new sample each time ({sid}), so no cache answers it
        ("ig-heatmap", "GET /api/samples/{sid}/heatmap.png?method=integrated_gradients", {}),
    ]


async def load(base: str, n: int, clients: int, seconds: float, k: int, n_classes: int,
               worst: list[tuple[str, str, dict]]):  # fmt: skip
    latencies: dict[str, list[float]] = {kind: [] for kind in (*ROUTES, *(w[0] for w in worst))}
    errors: list[str] = []
    busy: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    limits_ = httpx.Limits(max_connections=clients + len(worst))

    async def call(http: httpx.AsyncClient, kind: str, method: str, url: str, **kw) -> None:
        t = time.perf_counter()
        try:
            r = await http.request(method, url, **kw)
            status = r.status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        latencies[kind].append(time.perf_counter() - t)
        if status == 503:
            busy[kind] = busy.get(kind, 0) + 1
        elif status not in (200, 304):
            errors.append(f"{kind} {url[:80]}: {status}")

    async def client(seed: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(seed)
        turn = seed
        while time.perf_counter() < deadline:
            kind = ROUTES[turn % len(ROUTES)]
            turn += 1
            await call(http, kind, "GET", route_url(kind, rng, n, n_classes, k))

    async def heavy(name: str, target: str, kw: dict, http: httpx.AsyncClient) -> None:
        method, url = target.split(" ", 1)
        rng = random.Random(name)
        while time.perf_counter() < deadline:  # one after another, without pause
            await call(http, name, method, url.replace("{sid}", str(rng.randrange(n))), **kw)

    async with httpx.AsyncClient(base_url=base, limits=limits_, timeout=120) as http:
        await asyncio.gather(
            *(client(i, http) for i in range(clients)),
            *(heavy(name, target, kw, http) for name, target, kw in worst),
        )
    return latencies, errors, busy


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average: n/a"
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min, {os.cpu_count()} CPUs)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run", type=Path, help="an analysed run folder")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument(
        "--no-worst", action="store_true", help="no worst-allowed requests beside the clients"
    )
    parser.add_argument(
        "--heavy",
        choices=("both", "processes", "threads"),
        default="both",
        help="where the server runs heavy work: worker processes (the default server), threads\n"
        "of its own process (the reference), or both, one server after the other, with ratios",
    )
    args = parser.parse_args()
    modes = ["threads", "processes"] if args.heavy == "both" else [args.heavy]
    results = {}
    for i, mode in enumerate(modes):
        print(f"=== heavy work in {mode} ===")
        results[mode] = bench_server(
            args, mode, browser=not args.no_browser and i == len(modes) - 1
        )
    if len(results) == 2:
        print("=== processes / threads (the reference, the same run and clients) ===")
        ref, new = results["threads"], results["processes"]
        for kind in ref:
            for q in (50, 99):
                a, b = percentile(ref[kind][0], q), percentile(new[kind][0], q)
                print(
                    f"  {kind:12s} p{q} {b:8.1f} ms / {a:8.1f} ms = {b / a:5.2f}x  "
                    f"(load {new[kind][1]:.2f} / {ref[kind][1]:.2f})"
                )


def bench_server(
    args: argparse.Namespace, mode: str, browser: bool
) -> dict[str, tuple[list, float]]:
    """One server, heavy work in ``mode``: its figures printed, ``{route: (ms, mean load)}`` returned."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc, startup, startup_cpu = start_server(args.run, port, mode)
    try:
        info = httpx.get(base + "/api/run").json()
        n, n_classes = info["count"], len(info["classes"])
        print(f"run {info['name']}: {n:,} samples, {n_classes} classes")
        cpu = f", {startup_cpu:.2f} s of CPU" if startup_cpu is not None else ""
        print(
            f"startup (process start -> /api/run answers): {startup:.2f} s wall{cpu} ({load_average()})"
        )

        times = []
        for _ in range(5):
            t = time.perf_counter()
            payload = httpx.get(base + "/api/map", timeout=120).content
            times.append(time.perf_counter() - t)
        print(
            f"map payload: {len(payload):,} bytes ({len(payload) / n:.1f} B/point); "
            f"first fetch {times[0] * 1000:.0f} ms, then median {statistics.median(times[1:]) * 1000:.0f} ms"
        )

        if browser:
            for drawn, renderer, points in bench_browser(base):
                print(
                    f"navigation -> map drawn: {drawn:.0f} ms ({renderer}, {points:,} points; "
                    f"{drawn / 2000:.2f}x the 2 s target)"
                )

        for name, url in (
            ("similar", "/api/samples/0/similar?k=10"),
            ("heatmap", "/api/samples/0/heatmap.png"),
        ):
            t = time.perf_counter()
            httpx.get(base + url, timeout=120).raise_for_status()
            print(
                f"first {name} (loads torch/faiss unless prewarm did): {time.perf_counter() - t:.2f} s"
            )

        worst = [] if args.no_worst else worst_requests(base, n)
        print(
            f"load: {args.clients} clients for {args.seconds:.0f} s over {', '.join(ROUTES)} "
            f"(similar k={args.k}, gradcam png), "
            + (
                "alone (--no-worst)"
                if args.no_worst
                else "with the worst allowed requests beside them:"
            )
        )
        for name, target, _ in worst:
            print(f"  {name:12s} {target[:100]}")
        print(f"  before: {load_average()}")
        loads: list[float] = []
        sampler = threading.Thread(target=sample_load, args=(loads, args.seconds), daemon=True)
        sampler.start()
        latencies, errors, busy = asyncio.run(
            load(base, n, args.clients, args.seconds, args.k, n_classes, worst)
        )
        sampler.join()
        during = statistics.fmean(loads) if loads else float("nan")
        out = {}
        for kind, values in latencies.items():
            ms = [v * 1000 for v in values]
            out[kind] = (ms, during)
            extra = f"  ({busy[kind]} answered 503 busy)" if busy.get(kind) else ""
            print(
                f"  {kind:12s} {len(ms):6d} requests  p50 {percentile(ms, 50):8.1f} ms  "
                f"p99 {percentile(ms, 99):8.1f} ms  ({len(ms) / args.seconds:5.1f}/s, "
                f"load {during:.2f}){extra}"
            )
        p99 = percentile([v * 1000 for v in latencies["sample"]], 99)
        print(
            f"  /api/samples/<id> p99 {p99:.0f} ms: {p99 / 200:.2f}x the 200 ms target "
            f"(heavy work in {mode}; mean 1-min load average {during:.2f} on {os.cpu_count()} CPUs)"
        )
        print(f"  errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
        print(f"  after: {load_average()}")

        try:
            import psutil

            p = psutil.Process(proc.pid)
            server, *others = [p.memory_info().rss] + [c.memory_info().rss for c in p.children(recursive=True)]

            def mib(n: int) -> str:
                return f"{n / 2**20:.0f}"

            helpers = f"; worker and helper processes {' + '.join(map(mib, others))} MiB" if others else ""
            print(f"server RSS after load: {mib(server + sum(others))} MiB (the server {mib(server)} MiB{helpers})")
        except ImportError:
            print("server RSS: psutil not installed")
        return out
    finally:
        proc.terminate()
        proc.wait(10)


def sample_load(into: list[float], seconds: float) -> None:
    """The 1-minute load average once a second while the load runs."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        try:
            into.append(os.getloadavg()[0])
        except OSError:
            return
        time.sleep(1)


if __name__ == "__main__":
    main()

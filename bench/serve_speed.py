"""How fast `samplescope serve` is on an analysed run. Prints figures; asserts nothing.

    python bench/serve_speed.py runs/mnist [--clients 20] [--seconds 30] [--no-browser]

Measures, against the real server (``samplescope.server.serve``) in a subprocess on
loopback:

- startup: process start -> first answer from /api/run (heavy libraries load lazily);
- the map payload: bytes, bytes per point, time to fetch it;
- navigation -> every point drawn, in headless Chromium (``window.__mapDrawnAt``);
- the first similar and heatmap (the heavy libraries load lazily or in a prewarm thread);
- latency p50/p99 of similars and heatmaps with N concurrent clients for T seconds,
  and the error count (should be zero);
- the server's resident memory after the load (psutil).
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
import time
from pathlib import Path

import httpx

from samplescope.testing import free_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def start_server(run: Path, port: int) -> tuple[subprocess.Popen, float, float | None]:
    code = "import sys; from samplescope.server import serve; serve(sys.argv[1], port=int(sys.argv[2]))"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, str(run), str(port)], env=env)
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


async def load(base: str, n: int, clients: int, seconds: float, k: int, n_classes: int):
    latencies: dict[str, list[float]] = {"similar": [], "heatmap": []}
    errors: list[str] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients)

    async def client(seed: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(seed)
        turn = seed % 2
        while time.perf_counter() < deadline:
            sid = rng.randrange(n)
            kind = "similar" if turn % 2 else "heatmap"
            turn += 1
            if kind == "similar":
                url = f"/api/samples/{sid}/similar?k={k}"
            else:
                url = f"/api/samples/{sid}/heatmap.png?target={rng.randrange(n_classes)}"
            t = time.perf_counter()
            try:
                r = await http.get(url)
                ok = r.status_code == 200
            except httpx.HTTPError as exc:
                ok, r = False, exc
            latencies[kind].append(time.perf_counter() - t)
            if not ok:
                errors.append(f"{url}: {getattr(r, 'status_code', r)}")

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run", type=Path, help="an analysed run folder")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc, startup, startup_cpu = start_server(args.run, port)
    try:
        info = httpx.get(base + "/api/run").json()
        n, n_classes = info["count"], len(info["classes"])
        print(f"run {info['name']}: {n:,} samples, {n_classes} classes")
        cpu = f", {startup_cpu:.2f} s of CPU" if startup_cpu is not None else ""
        print(f"startup (process start -> /api/run answers): {startup:.2f} s wall{cpu}")

        times = []
        for _ in range(5):
            t = time.perf_counter()
            payload = httpx.get(base + "/api/map").content
            times.append(time.perf_counter() - t)
        print(
            f"map payload: {len(payload):,} bytes ({len(payload) / n:.1f} B/point); "
            f"first fetch {times[0] * 1000:.0f} ms, then median {statistics.median(times[1:]) * 1000:.0f} ms"
        )

        if not args.no_browser:
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

        print(
            f"load: {args.clients} clients for {args.seconds:.0f} s (similar k={args.k}, gradcam png)"
        )
        latencies, errors = asyncio.run(
            load(base, n, args.clients, args.seconds, args.k, n_classes)
        )
        for kind, values in latencies.items():
            ms = [v * 1000 for v in values]
            print(
                f"  {kind:8s} {len(ms):6d} requests  p50 {percentile(ms, 50):7.1f} ms  "
                f"p99 {percentile(ms, 99):7.1f} ms  ({len(ms) / args.seconds:.0f}/s)"
            )
        print(f"  errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))

        try:
            import psutil

            p = psutil.Process(proc.pid)
            rss = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
            print(f"server RSS after load: {rss / 2**20:.0f} MiB")
        except ImportError:
            print("server RSS: psutil not installed")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()

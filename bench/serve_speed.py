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

The clients run in processes of their own (bench/serve_clients.py, a raw keep-alive HTTP/1.1
client): the 20 load clients and the worst requests in one, and in another a probe that asks
``/api/samples/<id>`` every ``--probe-gap`` seconds alone in its process, so its figure is the
server's answer time, not the load clients waiting for their own interpreter (``--client
inprocess``: every client on httpx in this process, as the bench did until dd20304; on two
cores that client was most of the p99 it reported). Both the 20 clients' sample p99 and the
probe's are printed against the 200 ms target.

By default it does this twice, one server after the other: heavy work in threads of the
server's process (the reference) and in worker processes (what ``samplescope serve``
does, see samplescope/server/heavy.py), and prints the ratio of every p50 and p99 with the
load average beside it (``--heavy`` picks one).

Before and after a change, in one bench process: ``--reference-tree DIR`` (a checkout of the
old code, ``git archive OLD | tar -x -C DIR``) serves the reference, or ``--reference-settings
pool_threads=40`` a server of this tree with other Settings (``--settings`` for the new one);
``--rounds 6`` splits the load into windows the servers take in turn, so a machine whose load
drifts weighs on both alike. ``--phases`` times ``/api/samples/<id>`` inside each server
(bench/serve_phases.py: waits for a thread and for the event loop, the work, the database
lock, the loop's lag and what its thread ran when it stalled, garbage collections, and each
probe request from its send to its last byte: to the loop, parse, handler, write, to the
client) beside the client's figure. ``--uvicorn http=h11,loop=asyncio`` (and
``--reference-uvicorn``) pick uvicorn's parser and loop (by default httptools and uvloop, the
dependencies ``samplescope serve`` gets).

    git archive 0a75ab6 | tar -x -C /tmp/before     # the server before the row cache and httptools
    python bench/serve_speed.py RUN --no-browser --heavy processes --seconds 60 --rounds 6 \
        --phases --reference-tree /tmp/before --reference-uvicorn http=h11,loop=asyncio
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from serve_clients import route_target as route_url  # bench/: the script's folder is on sys.path

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
import json
run, port, mode, phases = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "phases"
extra = json.loads(sys.argv[6])  # Settings fields (--settings, --reference-settings)
server_options = json.loads(sys.argv[7])  # uvicorn.run options (--uvicorn, --reference-uvicorn)
if phases:  # bench/serve_phases.py: where /api/samples/<id>'s time goes, server side
    sys.path.insert(1, sys.argv[5])
    import serve_phases
    serve_phases.install()
settings = Settings(run_path=run, port=port, heavy_processes=mode == "processes", **extra)
app = create_app(run, settings)
if phases:
    serve_phases.time_db_lock(app)
    app = serve_phases.Phases(app)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **server_options)
"""


def start_server(
    run: Path,
    port: int,
    mode: str,
    phases: bool = False,
    tree: Path = REPO,
    settings: dict | None = None,
    server_options: dict | None = None,
) -> tuple[subprocess.Popen, float, float | None]:
    """The server of ``tree``'s samplescope code (this checkout's unless told)."""
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t0 = time.perf_counter()
    argv = [str(run.resolve()), str(port), mode, "phases" if phases else "-", str(Path(__file__).parent),
            json.dumps(settings or {}), json.dumps(server_options or {})]  # fmt: skip
    # in the tree (python -c puts the working directory first on sys.path)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, *argv], env=env, cwd=tree)
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
            # encoded once: 100,000 ids through json.dumps on every call held the clients' loop
            {
                "content": json.dumps({"ids": list(range(min(n, limits.MAX_IDS)))}).encode(),
                "headers": {"content-type": "application/json"},
            },
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

    # this process's own event loop: its late wake-ups inflate every figure measured here
    async def lag_monitor() -> None:
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append((time.perf_counter() - t - 0.005) * 1000)

    lags: list[float] = []
    async with httpx.AsyncClient(base_url=base, limits=limits_, timeout=120) as http:
        await asyncio.gather(
            lag_monitor(),
            *(client(i, http) for i in range(clients)),
            *(heavy(name, target, kw, http) for name, target, kw in worst),
        )
    latencies["(client loop lag)"] = [v / 1000 for v in lags]
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
    parser.add_argument("--seconds", type=float, default=30, help="seconds of load per server")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="split each server's load into this many windows, the servers taking turns\n"
        "(all of them started first): a machine whose load drifts weighs on each alike",
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument(
        "--no-worst", action="store_true", help="no worst-allowed requests beside the clients"
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="time /api/samples/<id> inside the server, phase by phase (bench/serve_phases.py)",
    )
    parser.add_argument(
        "--heavy",
        choices=("both", "processes", "threads"),
        default="both",
        help="where the server runs heavy work: worker processes (the default server), threads\n"
        "of its own process (the reference), or both, one server after the other, with ratios",
    )
    parser.add_argument(
        "--reference-tree",
        type=Path,
        help="a checkout of other samplescope code (say `git archive OLD | tar -x -C DIR`):\n"
        "its server is the reference, this tree's the new one, same --heavy for both",
    )
    parser.add_argument(
        "--settings",
        type=settings_arg,
        default={},
        help="server Settings fields for this tree's servers, e.g. pool_threads=8,switch_interval=0.001",
    )
    parser.add_argument(
        "--reference-settings",
        type=settings_arg,
        help="Settings fields of a reference server of this tree (or of --reference-tree's)",
    )
    parser.add_argument(
        "--uvicorn",
        type=settings_arg,
        default={},
        help="uvicorn.run options of this tree's servers, e.g. http=h11,loop=asyncio",
    )
    parser.add_argument(
        "--reference-uvicorn",
        type=settings_arg,
        help="uvicorn.run options of the reference server (with --reference-tree/-settings,\n"
        "or alone: a reference server of this tree with these options)",
    )
    parser.add_argument(
        "--client",
        choices=("processes", "inprocess"),
        default="processes",
        help="processes: the load clients in one process and a probe of /api/samples/<id>\n"
        "in another, on a raw keep-alive HTTP client (bench/serve_clients.py); inprocess:\n"
        "every client on httpx in this process, as the bench did before",
    )
    parser.add_argument(
        "--probe-gap",
        type=float,
        default=0.05,
        help="seconds from one probe request's start to the next (processes client)",
    )
    args = parser.parse_args()
    modes = ["threads", "processes"] if args.heavy == "both" else [args.heavy]
    new_uv = args.uvicorn
    if any(a is not None for a in (args.reference_tree, args.reference_settings, args.reference_uvicorn)):
        tree = args.reference_tree.resolve() if args.reference_tree else REPO
        ref = args.reference_settings if args.reference_settings is not None else (
            {} if args.reference_tree else args.settings)  # fmt: skip
        ref_uv = args.reference_uvicorn if args.reference_uvicorn is not None else new_uv
        name = f"{tree.name if args.reference_tree else 'this tree'} {_shown(ref)}{_shown(ref_uv, '')}"
        servers = [Server(f"{m}, {name}", m, tree, ref, ref_uv) for m in modes]
        servers += [
            Server(f"{m}, this tree {_shown(args.settings)}{_shown(new_uv, '')}", m, REPO, args.settings, new_uv)
            for m in modes
        ]
    else:
        servers = [Server(m, m, REPO, args.settings, new_uv) for m in modes]
    try:
        for i, server in enumerate(servers):
            print(f"=== {server.label}: start and first requests ===")
            server.start(args, browser=not args.no_browser and i == len(servers) - 1)
        for r in range(args.rounds):
            for server in servers:
                print(f"=== {server.label}: load, window {r + 1} of {args.rounds} ===")
                server.load(args, args.seconds / args.rounds)
        for server in servers:
            print(
                f"=== {server.label}: {args.seconds:.0f} s of load in {args.rounds} window(s) ==="
            )
            server.report(args)
    finally:
        for server in servers:
            server.stop()
    ref = servers[0]
    for new in servers[1:]:
        print(f"=== {new.label} / {ref.label} (the reference, the same run and clients) ===")
        for kind in ref.latencies:
            for q in (50, 99):
                a, b = percentile(ref.ms(kind), q), percentile(new.ms(kind), q)
                print(
                    f"  {kind:12s} p{q} {b:8.1f} ms / {a:8.1f} ms = {b / a:5.2f}x  "
                    f"(load {new.mean_load:.2f} / {ref.mean_load:.2f})"
                )


def settings_arg(text: str) -> dict:
    """``pool_threads=8,switch_interval=0.001`` -> ``{"pool_threads": 8, "switch_interval": 0.001}``."""
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _shown(settings: dict, default: str = "(defaults)") -> str:
    return (
        "(" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")" if settings else default
    )


class Server:
    """One server under test: heavy work in ``mode``, the samplescope code of ``tree``, these
    Settings fields."""

    def __init__(self, label: str, mode: str, tree: Path, settings: dict | None = None,
                 server_options: dict | None = None) -> None:  # fmt: skip
        self.label, self.mode, self.tree, self.settings = label, mode, tree, settings or {}
        self.server_options = server_options or {}
        self.probes: list[list[float]] = []  # [sent, received] of the probe's requests
        self.proc: subprocess.Popen | None = None
        self.latencies: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.busy: dict[str, int] = {}
        self.loads: list[float] = []

    def ms(self, kind: str) -> list[float]:
        return [v * 1000 for v in self.latencies.get(kind, [])]

    @property
    def mean_load(self) -> float:
        return statistics.fmean(self.loads) if self.loads else float("nan")

    def start(self, args: argparse.Namespace, browser: bool) -> None:
        """Start it, then the payload, page and first-request figures."""
        port = free_port()
        self.base = base = f"http://127.0.0.1:{port}"
        self.proc, startup, startup_cpu = start_server(
            args.run, port, self.mode, args.phases, self.tree, self.settings, self.server_options
        )
        info = httpx.get(base + "/api/run").json()
        self.n, self.n_classes = n, _ = info["count"], len(info["classes"])
        print(f"run {info['name']}: {n:,} samples, {self.n_classes} classes")
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
            # a worker loading torch on a loaded machine may pass the lane's timeout: ask again
            for _ in range(3):
                r = httpx.get(base + url, timeout=120)
                if r.status_code != 503:
                    break
                print(f"first {name}: 503 ({r.json()['detail'][:80]}); again")
            r.raise_for_status()
            print(
                f"first {name} (loads torch/faiss unless prewarm did): {time.perf_counter() - t:.2f} s"
            )
        self.worst = [] if args.no_worst else worst_requests(base, n)
        print(
            f"load: {args.clients} clients over {', '.join(ROUTES)} (similar k={args.k}, gradcam png), "
            + (
                "alone (--no-worst)"
                if args.no_worst
                else "with the worst allowed requests beside them:"
            )
        )
        for name, target, _ in self.worst:
            print(f"  {name:12s} {target[:100]}")

    def load(self, args: argparse.Namespace, seconds: float) -> None:
        """One window of load; its latencies added to the others."""
        print(f"  {seconds:.0f} s; before: {load_average()}")
        loads: list[float] = []
        sampler = threading.Thread(target=sample_load, args=(loads, seconds), daemon=True)
        sampler.start()
        if args.client == "processes":
            latencies, errors, busy = self._load_processes(args, seconds)
        else:
            latencies, errors, busy = asyncio.run(
                load(self.base, self.n, args.clients, seconds, args.k, self.n_classes, self.worst)
            )
        sampler.join()
        self.loads += loads
        for kind, values in latencies.items():
            self.latencies.setdefault(kind, []).extend(values)
        self.errors += errors
        for kind, count in busy.items():
            self.busy[kind] = self.busy.get(kind, 0) + count
        p99 = percentile([v * 1000 for v in latencies["sample"]], 99)
        probe = percentile([v * 1000 for v in latencies.get("probe", [])], 99)
        print(
            f"  /api/samples/<id> p99 {p99:.0f} ms in this window (the probe's {probe:.0f} ms); "
            f"after: {load_average()}"
        )

    def _load_processes(
        self, args: argparse.Namespace, seconds: float
    ) -> tuple[dict[str, list[float]], list[str], dict[str, int]]:
        """The load clients and the probe in two processes of their own (bench/serve_clients.py)."""
        start = time.perf_counter() + 1.0  # both processes started and connected by then
        common = {"host": "127.0.0.1", "port": int(self.base.rsplit(":", 1)[1]), "n": self.n,
                  "start": start, "deadline": start + seconds}  # fmt: skip
        worst = [
            [name, *target.split(" ", 1), kw.get("content", b"").decode("latin-1"), kw.get("headers", {})]
            for name, target, kw in self.worst
        ]
        jobs = {
            "load": {
                **common, "role": "load", "clients": args.clients, "routes": list(ROUTES),
                "n_classes": self.n_classes, "k": args.k, "worst": worst, "seed": len(self.probes),
            },
            "probe": {**common, "role": "probe", "gap": args.probe_gap, "seed": len(self.probes) + 1},
        }
        script = str(Path(__file__).with_name("serve_clients.py"))
        procs = {}
        for role, job in jobs.items():  # the job on stdin (a selection body is too long for argv)
            procs[role] = proc = subprocess.Popen(
                [sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
        out = {}
        for role, proc in procs.items():
            assert proc.stdout is not None
            stdout = proc.stdout.read()
            proc.wait(timeout=seconds + 300)
            if proc.returncode:
                raise SystemExit(f"the {role} clients exited with {proc.returncode}")
            out[role] = json.loads(stdout)
        latencies = {**out["load"]["latencies"], **out["probe"]["latencies"]}
        self.probes += out["probe"]["records"]
        return latencies, out["load"]["errors"] + out["probe"]["errors"], out["load"]["busy"]

    def report(self, args: argparse.Namespace) -> None:
        during = self.mean_load
        for kind in self.latencies:
            ms = self.ms(kind)
            extra = f"  ({self.busy[kind]} answered 503 busy)" if self.busy.get(kind) else ""
            print(
                f"  {kind:12s} {len(ms):6d} requests  p50 {percentile(ms, 50):8.1f} ms  "
                f"p99 {percentile(ms, 99):8.1f} ms  ({len(ms) / args.seconds:5.1f}/s, "
                f"load {during:.2f}){extra}"
            )
        for kind, who in (("sample", f"the {args.clients} clients'"), ("probe", "the probe's")):
            if not self.ms(kind):
                continue
            p99 = percentile(self.ms(kind), 99)
            print(
                f"  /api/samples/<id> p99 {p99:.0f} ms ({who}): {p99 / 200:.2f}x the 200 ms target "
                f"({self.label}; mean 1-min load average {during:.2f} on {os.cpu_count()} CPUs)"
            )
        print(
            f"  errors: {len(self.errors)}" + (f" (first: {self.errors[0]})" if self.errors else "")
        )
        if args.phases:
            import serve_phases

            data = httpx.get(self.base + "/__phases", timeout=120).json()
            for line in serve_phases.report(data, self.ms("sample"), args.seconds):
                print("  " + line)
            if self.probes:
                for line in serve_phases.probe_report(data, self.probes):
                    print("  " + line)
        try:
            import psutil

            assert self.proc is not None
            p = psutil.Process(self.proc.pid)
            server, *others = [p.memory_info().rss] + [
                c.memory_info().rss for c in p.children(recursive=True)
            ]

            def mib(n: int) -> str:
                return f"{n / 2**20:.0f}"

            helpers = (
                f"; worker and helper processes {' + '.join(map(mib, others))} MiB"
                if others
                else ""
            )
            print(
                f"server RSS after load: {mib(server + sum(others))} MiB (the server {mib(server)} MiB{helpers})"
            )
        except ImportError:
            print("server RSS: psutil not installed")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


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

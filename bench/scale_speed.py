"""How do samplescope's stages grow from 100k to 10M samples?

    python bench/scale_speed.py [--sizes 100000,1000000,10000000] [--out DIR] [--skip-serve] [--stages serve]
    python bench/scale_speed.py --image [--sizes 100000,1000000] [...]

The synthetic integration in bench/synthetic.py (32-D class mixture, 2% flipped
labels, planted leakage) with a small MLP trained once here on 100k samples and
brought in with ``create_run``. With ``--image``, the image path: MNIST repeated to N
samples (bench/mnist_repeated.py), every repeat after an image's first moved by up to 2
pixels (zeros shifted in), with the default CNN trained here for one epoch on MNIST's
60,000 training images; its planted faults are the repeats (N / 70,000 of each image), and
``analyze`` reports how many repeated rows the duplicate finder marks with a copy of their
own image (``duplicate_of``) and how many with another image's. Runs are ``OUT/run-N``
(``OUT/image-N`` with ``--image``). For each size, each stage runs in a fresh process:

- ``create``: the run folder (labels and metadata of every sample, weights);
- ``analyze``: the whole analysis, with its own per-stage seconds (inference, map,
  neighbours, insights, writes) and each stage's CPU seconds (``cpu_s``: steadier than
  wall time on a shared machine), and the planted faults the insights find: recall (and
  precision) of the 2% flipped labels among likely mislabels, recall (and precision) of the
  N // 1000 leaked validation copies among the samples marked ``leaks_from`` their training
  row, and among the pairs the insight lists (at most 1,000);
- ``query``: similars p50/p99 over 200 random samples and recall@10 against brute force;
- ``serve``: seconds until the server answers, its RSS, p50/p99 of a page of samples and of
  viewport queries (boxes of 1% of the map; at once, and the same boxes again 30 s after the
  server was ready, when a large run's map index is built), and navigation -> map drawn in
  headless Chromium.

Each process's peak RSS is printed beside its time, and each stage's ratio against
the previous size (the target: 10x the samples costs at most 12x the time). The load
average is printed before and after. Prints figures; asserts nothing.

The ``analyze`` child samples its own RSS every 0.5 s in a thread and reports where the
main thread was (the innermost samplescope frames) when it reached its peak; with
``--max-rss-gib`` it stops itself there, printing that place, instead of running the
machine out of memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
INTEGRATION = HERE / "synthetic.py"
IMAGE_INTEGRATION = HERE / "mnist_repeated.py"
IMAGE_SHIFT = 2  # pixels a repeat may move in x and y
#: --image: the image path (set by main and passed to each child)
IMAGE = False


def _env(n: int, out: Path) -> dict[str, str]:
    env = {**os.environ, "SAMPLESCOPE_SYNTH_N": str(n), "SAMPLESCOPE_CONFIG_DIR": str(out / "config"),
           "SAMPLESCOPE_REPEAT_N": str(n), "SAMPLESCOPE_REPEAT_SHIFT": str(IMAGE_SHIFT)}
    env.setdefault("SAMPLESCOPE_DATA_DIR", str(out / "data"))  # MNIST (the fetcher honours its mirror variable)
    return env


def _run(out: Path, n: int) -> Path:
    return out / (f"image-{n}" if IMAGE else f"run-{n}")


def _weights(out: Path) -> Path:
    return out / ("cnn-state.pt" if IMAGE else "mlp-state.pt")


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


# ---------------------------------------------------------------------------- children


def child_train_image(out: Path) -> dict:
    """Train the default CNN for one epoch on MNIST's 60,000 training images (every size's weights)."""
    import torch

    from samplescope.data.mnist import fetch_mnist, load_mnist
    from samplescope.models.cnn import SmallCNN

    fetch_mnist(progress=False)
    data = load_mnist()
    x = torch.from_numpy(data.x_train[:, None].astype(np.float32) / 255.0)
    y = torch.from_numpy(data.y_train.astype(np.int64))
    torch.manual_seed(0)
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    t = time.perf_counter()
    for batch in torch.randperm(len(x)).split(256):
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(model.state_dict(), _weights(out))
    return {"seconds": time.perf_counter() - t, "loss": float(loss)}


def child_train(out: Path) -> dict:
    """Train the MLP once on 100k synthetic samples; its weights are shared by every size."""
    if IMAGE:
        return child_train_image(out)
    import torch

    import samplescope

    integ = samplescope.load_integration(str(INTEGRATION))
    module = sys.modules[integ.module]
    rows = np.arange(len(integ.get_subset("train")))
    x = torch.from_numpy(integ.encode_inputs("train", rows))
    y = torch.from_numpy(integ.encode_labels("train", rows))
    torch.manual_seed(0)
    model = module.MLP()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    t = time.perf_counter()
    for _ in range(3):
        for batch in torch.randperm(len(rows)).split(512):
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(model.state_dict(), _weights(out))
    return {"seconds": time.perf_counter() - t, "loss": float(loss)}


def child_create(out: Path, n: int) -> dict:
    import torch

    import samplescope

    if IMAGE:
        from samplescope.data.mnist import fetch_mnist
        from samplescope.models.cnn import SmallCNN

        fetch_mnist(progress=False)
        integ = samplescope.load_integration(str(IMAGE_INTEGRATION))
        model = SmallCNN()
    else:
        integ = samplescope.load_integration(str(INTEGRATION))
        model = sys.modules[integ.module].MLP()
    model.load_state_dict(torch.load(_weights(out), weights_only=True))
    t = time.perf_counter()
    samplescope.create_run(integ, model, _run(out, n), overwrite=True, progress=False)
    return {"seconds": time.perf_counter() - t}


def _anon_gib() -> float:
    """Resident memory of the process's own (anonymous) pages, GiB: RSS without the pages of
    memory-mapped files (the latent, the kNN graph and index), which the kernel may drop."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


class RssWatch(threading.Thread):
    """Samples this process's RSS (and its anonymous part); remembers where the main thread was
    at each peak. ``--max-rss-gib`` applies to the whole RSS."""

    def __init__(self, limit_gib: float | None, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc, self.limit, self.every = psutil.Process(), limit_gib, every
        self.peak, self.where, self.main = 0.0, "", threading.main_thread().ident
        self.anon_peak, self.anon_where = 0.0, ""
        self.t0 = time.perf_counter()

    def _stack(self) -> str:
        frame = sys._current_frames().get(self.main)
        if frame is None:
            return ""
        ours = [f for f in traceback.extract_stack(frame) if "samplescope" in f.filename]
        return " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(ours[-4:]))

    def run(self) -> None:
        while True:
            rss = self.proc.memory_info().rss / 2**30
            if rss > self.peak:
                self.peak, self.where = rss, f"{time.perf_counter() - self.t0:.0f} s: {self._stack()}"
            anon = _anon_gib()
            if anon > self.anon_peak:
                self.anon_peak, self.anon_where = anon, f"{time.perf_counter() - self.t0:.0f} s: {self._stack()}"
            if self.limit and rss > self.limit:
                print(json.dumps({"error": f"RSS {rss:.2f} GiB passed --max-rss-gib {self.limit}",
                                  "where": self.where, "load": os.getloadavg()}), flush=True)
                os._exit(3)
            time.sleep(self.every)


#: where the analyze child appends each stage's end (seconds, RSS) as it happens: a run that is
#: stopped (or runs out of memory) still leaves its figures; set by child_analyze
PROGRESS: Path | None = None
_T0 = time.perf_counter()


def _progress(what: str) -> None:
    if PROGRESS is not None:
        import psutil

        rss = psutil.Process().memory_info().rss / 2**30
        with open(PROGRESS, "a") as f:
            f.write(f"{time.perf_counter() - _T0:8.1f} s  RSS {rss:.2f} GiB  anon {_anon_gib():.2f} GiB  "
                    f"load {os.getloadavg()[0]:.1f}  {what}\n")


class _Lines(logging.Handler):
    """Keeps the messages of samplescope's loggers: each finder's seconds, the neighbour build's."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("samplescope.analysis.insights", "samplescope.analysis.neighbors")):
            self.lines.append(record.getMessage())
            _progress(record.getMessage())


def _cpu_timers() -> dict[str, float]:
    """CPU seconds (user + sys, every thread) of analyze's stages: on a shared machine wall time
    mostly measures the other jobs. The stage functions are wrapped here, in the bench only."""
    from samplescope.analysis.neighbors import NeighborIndex
    from samplescope.analysis.projection import Projection
    from samplescope.pipeline import analyze

    cpu: dict[str, float] = {}

    def timed(owner: object, name: str, stage: str, only_first: bool = False) -> None:
        fn = getattr(owner, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            if only_first and stage in cpu:  # the latent's index, not the finders' sketch indexes
                return fn(*args, **kwargs)
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[stage] = cpu.get(stage, 0.0) + time.process_time() - start
                _progress(f"{stage} done ({cpu[stage]:.1f} s CPU)")

        setattr(owner, name, wrapper)

    timed(analyze, "_encode_pass", "inference")
    timed(NeighborIndex, "fit", "neighbors", only_first=True)
    timed(Projection, "fit_transform", "projection")
    timed(analyze, "_insights", "insights")
    return cpu


def child_analyze(out: Path, n: int, max_rss_gib: float | None = None) -> dict:
    import samplescope

    global PROGRESS
    PROGRESS = out / f"analyze-{n}.progress"
    _progress(f"analyze of {n:,} samples starts")
    cpu = _cpu_timers()
    lines = _Lines()
    logging.getLogger("samplescope").addHandler(lines)
    logging.getLogger("samplescope").setLevel(logging.INFO)
    watch = RssWatch(max_rss_gib)
    watch.start()
    t = time.perf_counter()
    cpu0 = time.process_time()
    summary = samplescope.analyze_run(_run(out, n), progress=False)
    seconds = time.perf_counter() - t
    cpu["total"] = time.process_time() - cpu0
    return {"seconds": seconds, "stages": summary.get("seconds", {}),
            "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
            "recall@10": (summary.get("neighbors") or {}).get("recall_at_10"),
            "neighbors": summary.get("neighbors"), "rss_peak_gib": round(watch.peak, 3),
            "rss_peak_at": watch.where, "anon_peak_gib": round(watch.anon_peak, 3),
            "anon_peak_at": watch.anon_where, "log": lines.lines,
            **(image_copies(out, n) if IMAGE else planted_recall(out, n))}


def image_copies(out: Path, n: int) -> dict:
    """How many of bench/mnist_repeated.py's repeats the duplicate finder marks with a copy of
    their own image (``duplicate_of``), and how many rows it marks with another image's."""
    import samplescope

    run = samplescope.open_run(_run(out, n))
    table = run.samples(["subset", "duplicate_of"])
    n_train = n * 6 // 7

    def image_of(ids: np.ndarray) -> np.ndarray:  # MNIST's 60,000 training then 10,000 test images
        return np.where(ids < n_train, ids % 60_000, 60_000 + (ids - n_train) % 10_000)

    source = image_of(table["sample_id"].to_numpy())
    of = table["duplicate_of"].to_numpy()
    repeated = np.bincount(source, minlength=70_000)[source] > 1  # its image appears again in its subset
    marked = of >= 0
    right = marked & (image_of(np.maximum(of, 0)) == source)
    return {"repeated_rows": int(repeated.sum()),
            "copy_recall": float(right[repeated].mean()) if repeated.any() else None,
            "marked_other_image": int((marked & ~right).sum()), "marked": int(marked.sum())}


def planted_recall(out: Path, n: int) -> dict:
    """How many of bench/synthetic.py's planted faults the insights find (and how many they list)."""
    import samplescope

    run = samplescope.open_run(_run(out, n))
    n_train = n * 9 // 10
    ids = np.arange(n)
    rows = np.where((ids >= n_train) & (ids < n_train + n // 1000), ids - n_train, ids)  # as synthetic._rows
    flipped = set(np.flatnonzero(rows % 50 == 7).tolist())
    flagged = set(run.samples(["mislabel_score"], where={"mislabel_score": (0.75, None)})["sample_id"].tolist())
    leaked = set(range(n_train, n_train + n // 1000))
    found: set[int] = set()
    for insight in run.insights("leakage"):
        found |= {int(b) for _a, b, _d in insight.details["pairs"]}
    # every sample the finder marks (the leaks_from column), not only the pairs the insight lists
    marked = run.samples(["leaks_from"], where={"leaks_from": (0, None)})
    right = marked["leaks_from"].to_numpy() == rows[marked["sample_id"].to_numpy()]  # the training row it copies
    marked_ok = set(marked["sample_id"][right].tolist())
    return {"mislabel_recall": len(flipped & flagged) / len(flipped),
            "mislabel_precision": len(flipped & flagged) / max(1, len(flagged)),
            "leak_recall": len(leaked & marked_ok) / max(1, len(leaked)),
            "leak_precision": len(leaked & marked_ok) / max(1, len(marked)),
            "leak_listed_recall": len(leaked & found) / max(1, len(leaked)), "leak_pairs_listed": len(found)}


def child_query(out: Path, n: int) -> dict:
    import samplescope

    run = samplescope.open_run(_run(out, n))
    rng = np.random.default_rng(0)
    ids = rng.integers(0, n, size=200)
    run.similar(int(ids[0]), k=10)  # the first query loads the engine
    times = []
    found = {}
    for sid in ids:
        t = time.perf_counter()
        found[int(sid)] = run.similar(int(sid), k=10)["sample_id"].to_numpy()
        times.append(time.perf_counter() - t)
    # recall@10 against brute-force cosine search, over all the queries in one pass of the latent
    latent = run.latent()
    q = np.asarray(latent[ids], np.float32)  # row i: query ids[i]
    q /= np.linalg.norm(q, axis=1, keepdims=True) + 1e-12
    best = np.full((11, len(ids)), -np.inf, np.float32)
    best_ids = np.zeros((11, len(ids)), np.int64)
    cols = np.arange(len(ids))
    for start in range(0, n, 250_000):
        block = np.asarray(latent[start : start + 250_000], np.float32)
        sims = (block @ q.T) / (np.linalg.norm(block, axis=1, keepdims=True) + 1e-12)  # (B, Q)
        top = np.argpartition(-sims, 11, axis=0)[:11]
        merged_s = np.concatenate([best, sims[top, cols]])
        merged_i = np.concatenate([best_ids, top + start])
        keep = np.argsort(-merged_s, axis=0, kind="stable")[:11]
        best, best_ids = merged_s[keep, cols], merged_i[keep, cols]
    hits = 0
    for i, sid in enumerate(ids):
        exact = set(best_ids[:, i].tolist()) - {int(sid)}
        hits += len(exact & (set(found[int(sid)].tolist()) - {int(sid)}))
    return {"p50_ms": _pct(times, 50), "p99_ms": _pct(times, 99), "recall@10": hits / (len(ids) * 10),
            "recall_queries": len(ids)}


def child_serve(out: Path, n: int) -> dict:
    import httpx
    import psutil

    import samplescope
    from samplescope.testing import served

    t = started = time.perf_counter()
    # `samplescope serve` in its own process, timed until /api/run answers
    with served(_run(out, n), timeout=600) as server:
        base = server.base
        ready = time.perf_counter() - t
        # one client, its connection kept, as the page's fetches do (a new httpx client per
        # request adds its own set-up, about 50 ms here, to every figure)
        client = httpx.Client(timeout=60)
        times = []
        for i in range(50):
            t = time.perf_counter()
            client.get(base + f"/api/samples?limit=50&offset={i * 50}").raise_for_status()
            times.append(time.perf_counter() - t)
        # viewport queries: boxes of 1% of the map's area at seeded random places (the page's
        # detail when zoomed in: every sample inside counted, up to the limit drawn; above
        # map_full_max answered by the compute worker from the saved map index)
        xy = samplescope.open_run(_run(out, n)).samples(["map_x", "map_y"], limit=20_000)
        lo, hi = xy[["map_x", "map_y"]].min().to_numpy(), xy[["map_x", "map_y"]].max().to_numpy()
        side = (hi - lo) * 0.1

        def viewports() -> tuple[list[float], list[int]]:
            rng = np.random.default_rng(0)
            views, points = [], []
            for _ in range(50):
                x0, y0 = lo + rng.random(2) * (hi - lo - side)
                t = time.perf_counter()
                r = client.get(base + "/api/map/viewport", params={"x0": x0, "x1": x0 + side[0], "y0": y0,
                                                                    "y1": y0 + side[1]})
                r.raise_for_status()
                views.append(time.perf_counter() - t)
                points.append(len(r.content))
            return views, points

        views, points = viewports()  # at once: a large run's map index is still being built
        time.sleep(max(0.0, started + ready + 30 - time.perf_counter()))
        warm, _ = viewports()  # the same boxes 30 s after ready, from the index
        sys.path.insert(0, str(HERE))
        import serve_speed

        paints = serve_speed.bench_browser(base, repeats=2)  # navigation -> the map drawn, headless Chromium
        rss = psutil.Process(server.process.pid).memory_info().rss / 2**30
        return {"ready_s": ready, "rss_gib": rss, "page_p50_ms": _pct(times, 50), "page_p99_ms": _pct(times, 99),
                "viewport_p50_ms": _pct(views, 50), "viewport_p99_ms": _pct(views, 99),
                "viewport_30s_p50_ms": _pct(warm, 50), "viewport_30s_p99_ms": _pct(warm, 99),
                "viewport_bytes_p50": float(np.median(points)),
                "first_paint_ms": [round(d) for d, _renderer, _count in paints],
                "points_drawn": [count for _d, _renderer, count in paints]}


MAX_RSS_GIB: float | None = None

CHILDREN = {"train": child_train, "create": child_create, "analyze": child_analyze, "query": child_query,
            "serve": child_serve}


def _child(stage: str, out: Path, n: int) -> dict:
    """Run one stage in a fresh process; its JSON result plus its wall time and peak RSS."""
    t = time.perf_counter()
    extra = (["--max-rss-gib", str(MAX_RSS_GIB)] if MAX_RSS_GIB else []) + (["--image"] if IMAGE else [])
    done = subprocess.run(
        [sys.executable, __file__, "--child", stage, "--out", str(out), "--sizes", str(n), *extra],
        env=_env(n, out), capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        if done.stdout.strip().startswith("{"):  # stopped by its RSS watch: where it was
            return json.loads(done.stdout.strip().splitlines()[-1])
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100000,1000000", help="comma-separated sample counts")
    p.add_argument("--out", help="folder for the runs (default: a temporary folder)")
    p.add_argument("--skip-serve", action="store_true")
    p.add_argument("--stages", help="only these stages, comma-separated (e.g. query,serve on runs made before)")
    p.add_argument("--max-rss-gib", type=float, help="stop an analysis whose RSS passes this, saying where")
    p.add_argument("--skip-train", action="store_true",
                   help="reuse OUT/mlp-state.pt (--image: OUT/cnn-state.pt) from an earlier run")
    p.add_argument("--image", action="store_true", help="the image path: MNIST repeated with shifts, the default CNN")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    global MAX_RSS_GIB, IMAGE
    MAX_RSS_GIB = args.max_rss_gib
    IMAGE = args.image
    sizes = [int(s) for s in args.sizes.split(",")]
    out = Path(args.out or tempfile.mkdtemp(prefix="samplescope-scale-"))
    out.mkdir(parents=True, exist_ok=True)

    if args.child:
        extra = [args.max_rss_gib] if args.child == "analyze" else []
        result = CHILDREN[args.child](out, *([] if args.child == "train" else [sizes[0], *extra]))
        result["peak_rss_gib"] = _peak_gib()
        print(json.dumps(result, default=float))
        return

    print(f"load average before: {os.getloadavg()}; runs in {out}")
    if not (args.skip_train and _weights(out).exists()):
        trained = _child("train", out, 100_000)
        what = "the CNN for one epoch of MNIST" if IMAGE else "the MLP on 100k samples"
        print(f"trained {what}: {trained}")
    stages = ["create", "analyze", "query"] + ([] if args.skip_serve else ["serve"])
    if args.stages:
        stages = [st for st in stages if st in args.stages.split(",")]
    previous: dict[str, float] = {}
    for n in sizes:
        for stage in stages:
            r = _child(stage, out, n)
            seconds = r.get("seconds", r.get("wall_s", float("nan")))
            ratio = f"{seconds / previous[stage]:.1f}x" if stage in previous else "-"
            previous[stage] = seconds
            print(f"n={n:>10,}  {stage:<8} {seconds:8.1f} s  ({ratio} the previous size)  "
                  f"peak RSS {r.get('peak_rss_gib', float('nan')):.2f} GiB  load {os.getloadavg()[0]:.1f}  "
                  f"{json.dumps(r, default=float)}",
                  flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

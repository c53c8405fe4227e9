"""Viewports asked in a large run's first seconds: ``samplescope serve`` (its compute worker
spawned before the web app is imported) against the same app served with the worker spawned
by the prewarm as the server becomes ready (``create_app`` and uvicorn, as a test would).

    python bench/viewport_start.py RUN [--rounds 3] [--delay 0.8] [--boxes 50]

``RUN`` is an analysed run above ``map_full_max`` (e.g. bench/scale_speed.py's 10M run). Each
round starts both servers in turn, each in a fresh process; once ``/api/run`` answers it waits
``--delay`` seconds (the benchmark's table pages and the page's own first requests take about
that long) and asks ``--boxes`` boxes of 1% of the map at seeded places, as
bench/scale_speed.py's serve stage does. Prints per round the seconds to ready and the boxes'
p50 / p99 / slowest, then the medians and their ratios, the load average beside each. Asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import httpx
import numpy as np


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def _round(run: Path, settings: dict | None, boxes: list[tuple[float, float, float, float]], delay: float) -> dict:
    """One server (``samplescope serve``, or with ``settings`` the same app from ``create_app``),
    timed from its start until ``/api/run`` answers, then ``boxes`` asked ``delay`` s later."""
    from samplescope.testing import serving

    t0 = time.perf_counter()
    with serving(run, settings=settings) as base:
        ready = time.perf_counter() - t0
        time.sleep(delay)
        times = []
        with httpx.Client(timeout=60) as client:
            for x0, x1, y0, y1 in boxes:
                t = time.perf_counter()
                client.get(base + "/api/map/viewport", params={"x0": x0, "x1": x1, "y0": y0, "y1": y1}).raise_for_status()
                times.append((time.perf_counter() - t) * 1000)
    return {"ready": ready, "p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99)),
            "max": max(times), "load": _load()}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--delay", type=float, default=0.8)
    p.add_argument("--boxes", type=int, default=50)
    args = p.parse_args()

    import samplescope

    run = samplescope.open_run(args.run)
    xy = run.samples(["map_x", "map_y"], limit=20_000)
    run.close()
    lo, hi = xy[["map_x", "map_y"]].min().to_numpy(), xy[["map_x", "map_y"]].max().to_numpy()
    side = (hi - lo) * 0.1
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(args.boxes):
        x0, y0 = lo + rng.random(2) * (hi - lo - side)
        boxes.append((float(x0), float(x0 + side[0]), float(y0), float(y0 + side[1])))

    # settings None: `samplescope serve`; else create_app with the default settings (testing.serving)
    ways = {"serve (worker spawned first)": None, "create_app (worker by the prewarm)": {"run_path": str(args.run)}}
    print(f"{args.run}; {args.rounds} rounds, {args.boxes} boxes {args.delay} s after ready; {_load()}")
    found: dict[str, list[dict]] = {name: [] for name in ways}
    for i in range(args.rounds):
        for name, settings in ways.items():
            r = _round(args.run, settings, boxes, args.delay)
            found[name].append(r)
            print(f"round {i + 1} {name:36s} ready {r['ready']:.2f} s  p50 {r['p50']:6.1f}  p99 {r['p99']:6.1f}  "
                  f"slowest {r['max']:6.1f} ms  {r['load']}")  # fmt: skip
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in ("ready", "p99", "max")} for name, rs in found.items()}
    (a, ma), (b, mb) = medians.items()
    print(f"median p99 {ma['p99']:.1f} against {mb['p99']:.1f} ms ({ma['p99'] / mb['p99']:.2f}x); slowest "
          f"{ma['max']:.1f} against {mb['max']:.1f} ms ({ma['max'] / mb['max']:.2f}x); ready {ma['ready']:.2f} against "
          f"{mb['ready']:.2f} s ({ma['ready'] / mb['ready']:.2f}x); {a} against {b}; {_load()}")  # fmt: skip


if __name__ == "__main__":
    main()

"""How fast is `samplescope analyze`, and how do its parts grow with the sample count?

    python bench/analyze_speed.py runs/mnist [--umap-default] [--queries 200]

1. The whole `samplescope analyze` on a copy of the run, in a fresh process (imports
   and JIT warm-up included), with its peak memory.
2. Query latencies on the analysed copy: similars, Grad-CAM, Integrated Gradients.
3. Growth from 10k to all samples of the projection, the neighbour index and the
   insight finders, run in this process on the run's own latent vectors.
4. With --umap-default: umap-learn's default ``UMAP().fit_transform`` on the same
   latent vectors in this process (import included), and the ratio against (1).

Prints figures and ratios; asserts nothing (machines are noisy, ratios are the point).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--umap-default", action="store_true", help="also time umap-learn's default (minutes)")
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ss-bench-"))
    copy = work / args.run.name
    shutil.copytree(args.run, copy)

    # -- 1. the whole analyze, fresh process -------------------------------------
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "samplescope", "analyze", str(copy)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    info = json.loads((copy / "run.json").read_text())["analysis"]
    print(f"analyze: {wall:.1f} s wall incl. imports; parts {info['seconds']}; peak RSS {peak_gib:.2f} GiB")

    # -- 2. query latencies ---------------------------------------------------------
    import samplescope

    run = samplescope.open_run(copy)
    n = len(run.samples(columns=["subset"]))
    rng = np.random.default_rng(0)
    ids = rng.choice(n, args.queries, replace=False)
    run.similar(0)
    run.heatmap(0, 0)
    for name, fn, count in [
        ("similar k=10", lambda i: run.similar(int(i), k=10), args.queries),
        ("grad-cam", lambda i: run.heatmap(int(i), target=int(i) % 10, method="gradcam"), args.queries),
        ("integrated gradients (50 steps)",
         lambda i: run.heatmap(int(i), target=(int(i) + 1) % 10, method="integrated_gradients"), 30),
    ]:
        times = []
        for i in ids[:count]:
            s = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - s)
        print(f"{name}: p50 {pct(times, 50):.1f} ms, p99 {pct(times, 99):.1f} ms ({count} queries)")

    # -- 3. growth from 10k to N ----------------------------------------------------
    from samplescope.analysis.neighbors import NeighborIndex
    from samplescope.analysis.projection import Projection

    latent = np.asarray(run.latent())
    sizes = [s for s in (10_000, n) if s <= n]
    base: dict[str, float] = {}
    for size in sizes:
        x = latent[:size]
        row = {}
        s = time.perf_counter()
        Projection(random_state=0).fit_transform(x)
        row["projection"] = time.perf_counter() - s
        s = time.perf_counter()
        index = NeighborIndex().fit(x)
        for i in range(50):
            index.query(np.array([i]), k=10)
        row["neighbours fit + 50 queries"] = time.perf_counter() - s
        line = ", ".join(
            f"{k} {v:.2f} s" + (f" (x{v / base[k]:.1f})" if k in base else "") for k, v in row.items()
        )
        print(f"{size:>7,} samples: {line}")
        base = base or row
    print(f"  (sample count grew x{sizes[-1] / sizes[0]:.1f})")

    # -- 4. umap-learn's default, same latent, same process ----------------------------
    if args.umap_default:
        s = time.perf_counter()
        import umap

        umap.UMAP().fit_transform(latent)
        umap_s = time.perf_counter() - s
        print(f"umap-learn UMAP().fit_transform incl. import: {umap_s:.1f} s; "
              f"samplescope's whole analyze is {umap_s / wall:.1f}x faster than umap alone")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""How fast is `samplescope analyze`, and how do its parts grow with the sample count?

    python bench/analyze_speed.py runs/mnist [--big] [--umap-default] [--queries 200]

1. The whole `samplescope analyze` on a copy of the run, in a fresh process (imports
   and JIT warm-up included), with its peak memory.
2. Query latencies on the analysed copy: similars, Grad-CAM, Integrated Gradients.
3. Growth from 10k to all samples (and with --big to 10x them: 700k for MNIST, the
   run's samples again with random shifts of up to 2 px) of inference, the map, the
   neighbour index and a similars query, and up to the run's size of the insight
   finders; each size in a fresh process, with its peak memory.
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


def shifted_batches(run, n: int, batch: int = 2048, seed: int = 0):
    """The run's inputs for sample ids 0..n-1 taken modulo its size; repeats get a random shift."""
    rng = np.random.default_rng(seed)
    size = len(run.samples(columns=["subset"]))
    for start in range(0, n, batch):
        ids = np.arange(start, min(n, start + batch))
        x = run.inputs(ids % size)  # (B, C, H, W)
        again = ids >= size
        if again.any():
            for i in np.flatnonzero(again):
                dy, dx = rng.integers(-2, 3, size=2)
                x[i] = np.roll(x[i], (dy, dx), axis=(-2, -1))
        yield x


def growth_child(path: Path, n: int) -> None:
    """Inference, map, neighbours (and insights up to the run's size) on n samples; JSON out."""
    import torch

    import samplescope
    from samplescope.analysis.inference import run_inference
    from samplescope.analysis.neighbors import NeighborIndex
    from samplescope.analysis.projection import Projection

    run = samplescope.open_run(path)
    size = len(run.samples(columns=["subset"]))
    torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
    seconds = {}
    t = time.perf_counter()
    result = run_inference(run.model(), shifted_batches(run, n), layer=run.latent_layer, n_samples=n)
    seconds["inference"] = time.perf_counter() - t
    latent = result.latent
    t = time.perf_counter()
    index = NeighborIndex().fit(latent)  # built once, as analyze does: the map and insights reuse it
    seconds["neighbour index"] = time.perf_counter() - t
    t = time.perf_counter()
    Projection(random_state=0).fit_transform(latent, neighbors=index)
    seconds["map"] = time.perf_counter() - t
    times = []
    for i in np.random.default_rng(0).choice(n, 50, replace=False):
        s = time.perf_counter()
        index.query(np.array([i]), k=10)
        times.append(time.perf_counter() - s)
    query_ms = float(np.median(times)) * 1000
    recall = index.info()["recall_at_10"]
    if n <= size:
        from samplescope.analysis.inference import prediction_columns
        from samplescope.pipeline.analyze import _insights

        samples = run.samples().iloc[:n].drop(columns=["cluster", "mislabel_score", "outlier_score"],
                                              errors="ignore")
        for name, values in prediction_columns(result.logits, samples["label"].to_numpy()).items():
            samples[name] = values
        t = time.perf_counter()
        _insights(run, samples.reset_index(drop=True), latent, 0, progress=False, neighbors=index)
        seconds["insights"] = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"n": n, "seconds": seconds, "query_ms": query_ms, "recall": recall, "peak_gib": peak}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--umap-default", action="store_true", help="also time umap-learn's default (minutes)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--big", action="store_true", help="also grow to 10x the run's samples (700k for MNIST)")
    ap.add_argument("--growth-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.growth_child:
        return growth_child(args.run, args.growth_child)

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
    print(f"analyze: {wall:.1f} s wall incl. imports; parts {info['seconds']}; peak RSS {peak_gib:.2f} GiB; "
          f"neighbours {info.get('neighbors')}")

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

    # -- 3. growth: 10k -> 70k -> 700k, one fresh process per size ------------------
    sizes = [s for s in (10_000, n) if s <= n] + ([10 * n] if args.big else [])
    print("growth (each size in its own process; inputs beyond the run's own are its samples "
          "again, each shifted by a random -2..2 px):")
    rows = []
    for size in sizes:
        out = subprocess.run([sys.executable, __file__, str(copy), "--growth-child", str(size)],
                             check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for row in rows:
        line = ", ".join(
            f"{k} {v:.2f} s" + (f" (x{v / rows[0]['seconds'][k]:.1f})" if row is not rows[0] else "")
            for k, v in row["seconds"].items()
        )
        q = row["query_ms"]
        q_ratio = f" (x{q / rows[0]['query_ms']:.1f})" if row is not rows[0] else ""
        print(f"  {row['n']:>8,} samples: {line}; similars query p50 {q:.2f} ms{q_ratio} "
              f"(recall@10 {row['recall']:.3f}); "
              f"peak RSS {row['peak_gib']:.2f} GiB")
    if len(rows) > 1:
        print("  (sample count x" + ", x".join(f"{r['n'] / rows[0]['n']:.0f}" for r in rows[1:])
              + "; insights run up to the run's own size)")

    # -- 4. umap-learn's default, same latent, same process ----------------------------
    if args.umap_default:
        s = time.perf_counter()
        import umap

        umap.UMAP().fit_transform(np.asarray(run.latent()))
        umap_s = time.perf_counter() - s
        print(f"umap-learn UMAP().fit_transform incl. import: {umap_s:.1f} s; "
              f"samplescope's whole analyze is {umap_s / wall:.1f}x faster than umap alone")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

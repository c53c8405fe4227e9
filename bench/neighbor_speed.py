"""The neighbour graph: lists of ~128 rows with an HNSW quantizer vs 2 sqrt(N) lists.

    python bench/neighbor_speed.py RUN/latent.npy [--sizes 100000,1000000] [--threads 1]
                                   [--graph-sample 100000] [--current-only --full-graph]

Both engines of :class:`samplescope.analysis.neighbors.NeighborIndex` index the first N
rows of a latent matrix (e.g. the latent.npy of a bench/scale_speed.py run) in the same
process, one after the other: today's (lists of about 128 rows, an HNSW graph over their
centroids above 1,024 lists) and the earlier one (2 sqrt(N) lists, a flat scan of their
centroids). Each builds its index (train, add, tune nprobe to recall@10 >= 0.95 on 500
rows), then searches the graph's 16 neighbours of ``--graph-sample`` seeded rows (all
rows when N is at most that); the graph's time is that search scaled to N rows (every
row's search costs the same on average). Prints wall and CPU seconds (user + sys of
the process: steadier on a shared machine), their ratio, nlist/nprobe, and recall@10
against exact search on 1,000 of the searched rows, with the load average. Asserts
nothing.

``--current-only`` measures today's engine alone; ``--full-graph`` lets ``fit`` build the
whole graph as ``analyze`` does (every row, searched grouped by its IVF list) instead of
timing a sample of rows, and prints each size's CPU seconds against the first size's.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np


def exact_recall(x: np.ndarray, found: np.ndarray, rows: np.ndarray) -> float:
    import faiss

    from samplescope.analysis.neighbors import _normalise, recall_at

    unit = _normalise(x)
    _, exact = faiss.knn(unit[rows], unit, 11, metric=faiss.METRIC_INNER_PRODUCT)
    truth = np.array([[j for j in row if j != i][:10] for i, row in zip(rows, exact, strict=True)])
    return recall_at(found[:, :10], truth)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("latent", help="an (N, D) float32 .npy file, e.g. a run's latent.npy")
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--threads", type=int, default=1, help="faiss threads (1: no OpenMP contention)")
    p.add_argument("--graph-sample", type=int, default=100_000)
    p.add_argument("--current-only", action="store_true", help="only today's engine")
    p.add_argument("--full-graph", action="store_true", help="fit builds every row's graph, as analyze does")
    args = p.parse_args()
    from samplescope.analysis.neighbors import NeighborIndex

    full = np.load(args.latent, mmap_mode="r")
    engines = {"lists of ~128 rows (HNSW over >1024)": {},
               "2 sqrt(N) lists, flat quantizer": {"list_rows": 10**12, "flat_quantizer_max": 10**12}}
    if args.current_only:
        engines = dict(list(engines.items())[:1])
    print(f"load average before: {os.getloadavg()}; faiss threads {args.threads}", flush=True)
    if args.full_graph:
        first = None
        for n in [int(s) for s in args.sizes.split(",")]:
            x = np.ascontiguousarray(full[:n], dtype=np.float32)
            load = os.getloadavg()
            index, wall, cpu = _timed(NeighborIndex(n_threads=args.threads).fit, x)
            rows = np.sort(np.random.default_rng(7).choice(n, min(n, 1000), replace=False))
            ratio = f"{cpu / first[1]:.1f}x the CPU of {first[0]:,} for {n / first[0]:.0f}x the rows" if first else "-"
            first = first or (n, cpu)
            info = index.info()
            print(f"n={n:>10,} fit with its graph: {wall:6.1f} s wall / {cpu:6.1f} s CPU ({ratio}); "
                  f"seconds {info['seconds']}, nlist {info.get('nlist')} nprobe {info.get('nprobe')}, "
                  f"recall@10 {exact_recall(x, np.asarray(index.graph_rows_[rows]), rows):.3f}  "
                  f"load {load[0]:.1f} -> {os.getloadavg()[0]:.1f}  "
                  f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB", flush=True)
            del index, x
        return
    for n in [int(s) for s in args.sizes.split(",")]:
        x = np.ascontiguousarray(full[:n], dtype=np.float32)
        rng = np.random.default_rng(7)
        rows = np.arange(n) if n <= args.graph_sample else np.sort(rng.choice(n, args.graph_sample, replace=False))
        check = np.sort(rng.choice(len(rows), min(len(rows), 1000), replace=False))
        totals = {}
        for name, kw in engines.items():
            load = os.getloadavg()
            index, build_w, build_c = _timed(NeighborIndex(n_threads=args.threads, graph_k=0, **kw).fit, x)
            (found, _), graph_w, graph_c = _timed(index._search_rows, rows, 16, None)
            scale = n / len(rows)
            graph_w, graph_c = graph_w * scale, graph_c * scale
            totals[name] = (build_w + graph_w, build_c + graph_c)
            info = index.info()
            print(f"n={n:>10,} {name:<37} index {build_w:6.1f} s wall / {build_c:6.1f} s CPU, graph "
                  f"{graph_w:6.1f} / {graph_c:6.1f} s (x{scale:.0f} of {len(rows):,} rows)  nlist {info.get('nlist')} "
                  f"nprobe {info.get('nprobe')}  recall@10 {exact_recall(x, found[check], rows[check]):.3f}  "
                  f"load {load[0]:.1f} -> {os.getloadavg()[0]:.1f}  "
                  f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB", flush=True)
            del index
        if len(totals) < 2:
            continue
        (a_w, a_c), (b_w, b_c) = totals.values()
        print(f"n={n:>10,} total new / old: wall {a_w:.1f} / {b_w:.1f} s = {a_w / b_w:.2f}x, "
              f"CPU {a_c:.1f} / {b_c:.1f} s = {a_c / b_c:.2f}x", flush=True)


def _timed(fn, *args):
    """``(fn(*args), wall seconds, this process's CPU seconds)``."""
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.process_time() - c


if __name__ == "__main__":
    main()

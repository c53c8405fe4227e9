"""The neighbour graph: lists of constant size with an HNSW quantizer vs 2 sqrt(N) lists.

    python bench/neighbor_speed.py RUN/latent.npy [--sizes 100000,1000000] [--threads 2]

Both engines of :class:`samplescope.analysis.neighbors.NeighborIndex` build the kNN
graph of the first N rows of a latent matrix (e.g. a run of bench/scale_speed.py) in
the same process, one after the other: today's (lists of about 128 rows, an HNSW graph
over their centroids above 1,024 lists) and the earlier one (2 sqrt(N) lists found by a
flat scan). Prints each build's seconds, their ratio, the nlist/nprobe the tuning chose,
and the graph's recall@10 against exact search on 1,000 seeded rows, with the load
average. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np


def exact_recall(x: np.ndarray, graph: np.ndarray, rows: np.ndarray) -> float:
    import faiss

    from samplescope.analysis.neighbors import _normalise, recall_at

    unit = _normalise(x)
    _, found = faiss.knn(unit[rows], unit, 11, metric=faiss.METRIC_INNER_PRODUCT)
    truth = np.array([[j for j in row if j != i][:10] for i, row in zip(rows, found, strict=True)])
    return recall_at(np.asarray(graph[rows, :10]), truth)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("latent", help="an (N, D) float32 .npy file, e.g. a run's latent.npy")
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    from samplescope.analysis.neighbors import NeighborIndex

    full = np.load(args.latent, mmap_mode="r")
    engines = {"lists of ~128 rows (HNSW over >1024)": {},
               "2 sqrt(N) lists, flat quantizer": {"list_rows": 10**12, "flat_quantizer_max": 10**12}}
    for n in [int(s) for s in args.sizes.split(",")]:
        x = np.ascontiguousarray(full[:n], dtype=np.float32)
        rows = np.sort(np.random.default_rng(7).choice(n, min(n, 1000), replace=False))
        seconds = {}
        for name, kw in engines.items():
            load = os.getloadavg()
            t = time.perf_counter()
            index = NeighborIndex(n_threads=args.threads, **kw).fit(x)
            seconds[name] = time.perf_counter() - t
            info = index.info()
            print(f"n={n:>10,} {name:<34} {seconds[name]:7.1f} s  nlist {info.get('nlist')} nprobe "
                  f"{info.get('nprobe')} recall@10 build-time {info['recall_at_10']:.3f} / 1,000 rows "
                  f"{exact_recall(x, index.graph_rows_, rows):.3f}  load {load[0]:.1f} -> {os.getloadavg()[0]:.1f}  "
                  f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB", flush=True)
            del index
        a, b = seconds.values()
        print(f"n={n:>10,} ratio new / old: {a / b:.2f}x", flush=True)


if __name__ == "__main__":
    main()

"""Why the neighbour stage grows past 10x per 10x rows: the probes it needs grow with N.

    python bench/probe_growth.py RUN [--sizes 250000,1000000,4000000] [--list-rows 128] [--hnsw]

``RUN`` is an analysed run with a large latent (e.g. the 10M run of bench/scale_speed.py).
For each size N, the first N rows of its latent are indexed by ``NeighborIndex`` (no graph),
which tunes nprobe to its recall target as ``analyze`` does; then printed: the lists, the
tuned probes, recall@10 at a fixed 14 probes (on the index's own 500-row exact sample), and
the graph search's cost a row at the tuned probes (40,000 random rows grouped by their list,
as ``fit`` searches them; microseconds of wall and CPU time). Each ``--list-rows`` value is
one index per size. With ``--hnsw``, faiss's HNSW over all rows (M 16, efConstruction 40,
the same threads) for comparison: its build a row and its search a row at efSearch 16, 24
and 32 with their recall@10. Ratios are against the first size, in the same process; the
load average is printed beside each line. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

QUERIES = 40_000


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def _ivf(latent: np.ndarray, list_rows: int, threads: int) -> dict:
    from samplescope.analysis import neighbors as nb

    index = nb.NeighborIndex(graph_k=0, exact_max=0, list_rows=list_rows, n_threads=threads)
    started = time.perf_counter()
    index.fit(latent)
    fit_s = time.perf_counter() - started
    sample, truth, truth_dist = index._recall_truth
    tuned = index.index_.nprobe
    index.index_.nprobe = 14
    found, dist = index._search_rows(sample, 10, None)
    at_14 = nb.recall_at(found, truth, dist, truth_dist)
    index.index_.nprobe = tuned
    index._set_ef_search(nb._GRAPH_EF_SEARCH)  # as fit searches the graph's rows
    rows = np.sort(np.random.default_rng(5).choice(len(latent), min(QUERIES, len(latent)), replace=False))
    lists = index.index_.quantizer.assign(index._prepare(np.asarray(latent[rows])), 1)[:, 0]
    rows = rows[np.argsort(lists, kind="stable")]
    wall, cpu = time.perf_counter(), time.process_time()
    index._search_rows(rows, nb.GRAPH_K, None)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"lists": index.index_.nlist, "nprobe": int(tuned), "recall@10 at 14": round(at_14, 3),
            "search_us": wall / len(rows) * 1e6, "search_cpu_us": cpu / len(rows) * 1e6, "fit_s": fit_s}


def _hnsw(latent: np.ndarray) -> dict:
    import faiss

    from samplescope.analysis.neighbors import _normalise

    x = _normalise(np.asarray(latent))
    rng = np.random.default_rng(5)
    sample = np.sort(rng.choice(len(x), 500, replace=False))
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    _, truth = flat.search(x[sample], 11)
    del flat
    index = faiss.IndexHNSWFlat(x.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 40
    started = time.perf_counter()
    index.add(x)
    out = {"build_us": (time.perf_counter() - started) / len(x) * 1e6}
    queries = x[np.sort(rng.choice(len(x), min(QUERIES, len(x)), replace=False))]
    for ef in (16, 24, 32):
        index.hnsw.efSearch = ef
        _, got = index.search(x[sample], 11)
        recall = np.mean([len(set(g[1:]) & set(t[1:])) / 10 for g, t in zip(got, truth)])
        started = time.perf_counter()
        index.search(queries, 17)
        out[f"ef{ef}"] = (round(float(recall), 3), (time.perf_counter() - started) / len(queries) * 1e6)
    return out


def main() -> None:
    import faiss

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--sizes", default="250000,1000000,4000000")
    p.add_argument("--list-rows", default="128", help="rows per IVF list, comma-separated")
    p.add_argument("--hnsw", action="store_true", help="also faiss's HNSW over all rows")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    faiss.omp_set_num_threads(args.threads)
    latent = np.load(args.run / "latent.npy", mmap_mode="r")
    sizes = [int(v) for v in args.sizes.split(",")]
    if max(sizes) > len(latent):
        raise SystemExit(f"--sizes: {max(sizes):,} is more than the run's {len(latent):,} rows; pick smaller sizes")
    print(f"{args.run}: latent {latent.shape}; {_load()}")
    first: dict[str, float] = {}
    for n in sizes:
        part = np.ascontiguousarray(latent[:n])
        for list_rows in (int(v) for v in args.list_rows.split(",")):
            got = _ivf(part, list_rows, args.threads)
            ratio = got["search_us"] / first.setdefault(f"ivf{list_rows}", got["search_us"])
            print(f"n={n:,} IVF list_rows={list_rows}: lists {got['lists']:,}, tuned nprobe {got['nprobe']}, "
                  f"recall@10 at 14 probes {got['recall@10 at 14']}, graph search {got['search_us']:.1f} us a row "
                  f"({got['search_cpu_us']:.1f} CPU; {ratio:.2f}x the first size), fit {got['fit_s']:.1f} s; {_load()}",
                  flush=True)
        if args.hnsw:
            got = _hnsw(part)
            ratio = got["build_us"] / first.setdefault("hnsw", got["build_us"])
            efs = ", ".join(f"ef {k[2:]}: recall {v[0]} {v[1]:.1f} us" for k, v in got.items() if k.startswith("ef"))
            print(f"n={n:,} HNSW M16: build {got['build_us']:.1f} us a row ({ratio:.2f}x the first size); "
                  f"search a row {efs}; {_load()}", flush=True)
        del part


if __name__ == "__main__":
    main()

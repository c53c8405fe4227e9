"""The IVF add's walk: rows in row order against rows in the order of their coarse cluster.

    python bench/ivf_add_order.py RUN [--rows 2000000] [--threads 2]

``RUN`` is an analysed run whose neighbour index has an HNSW quantizer (more than 1,024
lists: e.g. a bench/scale_speed.py run of 1M or 10M samples). Adding a row to the index
walks the HNSW graph of the lists' centroids to the row's nearest list;
``NeighborIndex._assign_rows`` walks each block's rows in the order of a coarse k-means
cluster, so that consecutive walks visit the same centroids. Here the first ``--rows`` rows
of the run's latent are assigned both ways by that method, in the same process, one after
the other and then again (the second pair is the one to read: the latent's pages are cached
by then). The coarse clusters are a k-means of the saved centroids (sqrt(lists) of them, as
the fit's own two-level training makes). Prints each way's microseconds a row, their ratio,
the load average, and whether both give every row the same list. Asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import faiss

    from samplescope.analysis.neighbors import NeighborIndex

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    latent = np.load(args.run / "latent.npy", mmap_mode="r")
    index = NeighborIndex.load(args.run, latent, n_threads=args.threads)
    quantizer = faiss.downcast_index(index.index_.quantizer)
    if not isinstance(quantizer, faiss.IndexHNSW):
        raise SystemExit(f"{args.run}'s index scans {index.index_.nlist} centroids flat: nothing to order")
    index._set_threads()
    quantizer.hnsw.efSearch = 8  # the add's walk (neighbors._ADD_EF_SEARCH)
    nlist = int(index.index_.nlist)
    centroids = quantizer.reconstruct_n(0, nlist)
    coarse = faiss.Kmeans(centroids.shape[1], int(math.sqrt(nlist)), niter=10, seed=1, spherical=True)
    coarse.train(centroids)
    index.n_samples_ = min(args.rows, len(latent))
    index._source = latent[: index.n_samples_]  # the blocks the method reads
    print(f"{args.run}: {index.n_samples_:,} of {len(latent):,} rows, {nlist:,} lists, "
          f"{int(math.sqrt(nlist))} coarse clusters, {args.threads} threads; load {os.getloadavg()[0]:.2f}")
    results: dict[str, np.ndarray] = {}
    for round_ in (1, 2):
        seconds = {}
        for way, order in (("row order", None), ("coarse order", coarse.index)):
            index._coarse = order
            t = time.perf_counter()
            results[way] = index._assign_rows(index.index_)
            seconds[way] = time.perf_counter() - t
        row, ordered = (seconds[w] / index.n_samples_ * 1e6 for w in ("row order", "coarse order"))
        print(f"round {round_}: row order {row:.2f} us a row, coarse order {ordered:.2f} (the ordering "
              f"included): {row / ordered:.2f}x; same lists: "
              f"{bool(np.array_equal(results['row order'], results['coarse order']))}; "
              f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

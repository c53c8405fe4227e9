"""The map's UMAP layout as samplescope makes it (analysis/projection.py: the shared kNN graph,
umap's membership formulas in numpy, umap's own ``simplicial_set_embedding``) against
umap-learn's ``UMAP(precomputed_knn=...)`` handed the same graph, each in a fresh process
(numba compiles umap's kernels in every new process, which a user's ``analyze`` pays).

    python bench/umap_library.py [--sizes 10000,50000] [--epochs 200] [--rounds 2]

For each N: seeded 64-D class blobs (10 classes, ReLU'd like a latent layer), the kNN graph of
``NeighborIndex`` (15 neighbours with the row itself, cosine), saved to a temporary folder;
then per round, each way in its own process: the seconds from the process's start to the
(N, 2) map (imports included), and the map's 10-NN label agreement (how often a point's 10
nearest map neighbours share its class). Prints the rounds, the medians, the ratio
umap-learn / samplescope and the load average. Asserts nothing about time.

``projection.py``'s docstring cites this comparison for why it does not hand the graph to
umap-learn.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
folder, way, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = np.load(folder + "/x.npy")
rows, dist = np.load(folder + "/rows.npy"), np.load(folder + "/dist.npy")
if way == "samplescope":
    from samplescope.analysis.neighbors import NeighborIndex
    from samplescope.analysis.projection import Projection
    engine = NeighborIndex(metric="cosine").fit(x)  # exact below 30,000 rows; the graph again
    xy = Projection("umap", n_epochs=epochs, fit_size=None, random_state=0).fit_transform(x, neighbors=engine)
else:
    import umap
    n = len(x)
    knn_i = np.concatenate([np.arange(n)[:, None], rows], axis=1)  # umap-learn's graph has the row first
    knn_d = np.concatenate([np.zeros((n, 1), np.float32), dist], axis=1)
    xy = umap.UMAP(n_neighbors=knn_i.shape[1], n_epochs=epochs, metric="cosine", random_state=0,
                   precomputed_knn=(knn_i, knn_d, None)).fit_transform(x)
np.save(folder + f"/xy-{way}.npy", np.asarray(xy, np.float32))
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def _blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centres = rng.normal(size=(10, 64)) * 0.5  # overlapping classes: the agreement says something
    return np.maximum(centres[labels] + rng.normal(size=(n, 64)), 0).astype(np.float32), labels


def _agreement(xy: np.ndarray, labels: np.ndarray) -> float:
    from samplescope.analysis.neighbors import NeighborIndex

    rows, _ = NeighborIndex(metric="l2").fit(xy).kneighbors(k=10)
    return float((labels[rows] == labels[:, None]).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,50000")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    from samplescope.analysis.neighbors import NeighborIndex

    ways = ("samplescope", "umap-learn")
    for n in (int(s) for s in args.sizes.split(",")):
        folder = Path(tempfile.mkdtemp(prefix="samplescope-umap-"))
        x, labels = _blobs(n)
        rows, dist = NeighborIndex(metric="cosine").fit(x).kneighbors(k=14)
        for name, a in (("x", x), ("rows", rows), ("dist", dist.astype(np.float32))):
            np.save(folder / f"{name}.npy", a)
        print(f"{n:,} rows x 64, {args.epochs} epochs; load {os.getloadavg()[0]:.2f}")
        found: dict[str, list[float]] = {w: [] for w in ways}
        for i in range(args.rounds):
            for way in ways if i % 2 == 0 else ways[::-1]:
                t = time.perf_counter()
                done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), way, str(args.epochs)],
                                      capture_output=True, text=True, check=False)  # fmt: skip
                if done.returncode != 0:
                    print(f"  round {i + 1} {way}: failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
                    continue
                seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
                found[way].append(seconds)
                agree = _agreement(np.load(folder / f"xy-{way}.npy"), labels)
                print(f"  round {i + 1} {way:12s} {seconds:6.1f} s in the process ({time.perf_counter() - t:5.1f} s "
                      f"with its start), 10-NN label agreement {agree:.4f}  load {os.getloadavg()[0]:.2f}")
        if all(found.values()):
            ours, theirs = (statistics.median(found[w]) for w in ways)
            print(f"  median samplescope {ours:.1f} s, umap-learn {theirs:.1f} s: {theirs / ours:.2f}x  "
                  f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""Time the analysis parts and measure map quality; prints figures, asserts nothing.

    python bench/analyze_parts.py latent.npy labels.npy [--skip-umap-default]
    python bench/analyze_parts.py latent.npy labels.npy --methods umap \
        --variant 'umap-20k={"method": "umap", "fit_size": 20000}'

``latent.npy`` is (N, D) float32 (e.g. the input of the last linear layer of an
MNIST classifier), ``labels.npy`` (N,) ints. Each projection variant runs in a
fresh Python process so its time includes importing umap/openTSNE and numba's
JIT (numba's on-disk cache is used as a user would have it; ``--cold-numba``
points it at an empty folder to measure a first-ever run). Times are wall and
CPU seconds (CPU = user + sys of the process, all threads; steadier than wall
time on a shared machine), and their ratio against umap-learn's default
``UMAP().fit_transform`` timed the same way in the same run.

Map quality:
- ``knn_acc``: a 10-NN classifier on the 2-D map, fitted on a seeded random
  ``1 - val_fraction`` of the points and scored on the rest;
- ``np@10``: neighbourhood preservation, the mean fraction of each point's 10
  nearest latent neighbours (cosine) that are among its 10 nearest on the map,
  over 2,000 seeded random points.

Then Grad-CAM / Integrated Gradients / saliency on a ~30k-parameter CNN for
28 x 28 inputs, and neighbour queries on the latent matrix.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS: dict[str, dict[str, object]] = {
    "umap": {"method": "umap"},
    "tsne": {"method": "tsne"},
    "pca": {"method": "pca"},
}

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
steps = {}
import numpy as np
params, latent_path, out_path = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
x = np.load(latent_path)
t_load = time.perf_counter() - t0
t1 = time.perf_counter()
if params.get("method") == "umap-learn-default":
    import umap
    xy = umap.UMAP().fit_transform(x)
else:
    from samplescope.analysis.projection import Projection
    proj = Projection(**params)
    xy = proj.fit_transform(x)
    steps = {k: round(v, 2) for k, v in proj.timings_.items()}
wall = time.perf_counter() - t1
ru = resource.getrusage(resource.RUSAGE_SELF)
np.save(out_path, np.asarray(xy, dtype=np.float32))
print(json.dumps({"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "load": t_load, "steps": steps}))
"""


# --------------------------------------------------------------------------- quality


def knn_accuracy(xy: np.ndarray, labels: np.ndarray, val_fraction: float, seed: int) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(seed)
    is_val = rng.random(len(xy)) < val_fraction
    clf = KNeighborsClassifier(n_neighbors=10).fit(xy[~is_val], labels[~is_val])
    return float((clf.predict(xy[is_val]) == labels[is_val]).mean())


def _knn(base: np.ndarray, queries: np.ndarray, k: int, cosine: bool) -> np.ndarray:
    import faiss

    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if cosine:
        base = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-12)
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        index = faiss.IndexFlatIP(base.shape[1])
    else:
        index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    return index.search(queries, k + 1)[1]


def neighbourhood_preservation(
    latent: np.ndarray, xy: np.ndarray, k: int = 10, n_queries: int = 2000, seed: int = 0
) -> float:
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(latent), min(n_queries, len(latent)), replace=False)
    hi = _knn(latent, latent[rows], k, cosine=True)
    lo = _knn(xy, xy[rows], k, cosine=False)
    kept = []
    for r, a, b in zip(rows, hi, lo, strict=True):
        a = [i for i in a if i != r][:k]
        b = [i for i in b if i != r][:k]
        kept.append(len(set(a) & set(b)) / k)
    return float(np.mean(kept))


# --------------------------------------------------------------------------- projection


def run_variant(name: str, params: dict[str, object], latent_path: str, env: dict[str, str]):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "xy.npy")
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(params), latent_path, out],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            return None
        timing = json.loads(proc.stdout.strip().splitlines()[-1])
        return timing, np.load(out)


def bench_projection(args: argparse.Namespace, latent: np.ndarray, labels: np.ndarray) -> None:
    env = dict(os.environ)
    cold_dir = None
    if args.cold_numba:
        cold_dir = tempfile.TemporaryDirectory()
    variants = dict(VARIANTS)
    for spec in args.variant:
        name, _, js = spec.partition("=")
        variants[name] = json.loads(js)
    names = [n for n in args.methods.split(",") if n] + [v.partition("=")[0] for v in args.variant]
    if not args.skip_umap_default:
        names.append("umap-learn-default")
        variants["umap-learn-default"] = {"method": "umap-learn-default"}

    print(f"projection of {latent.shape} ({args.latent}), {os.cpu_count()} cores")
    print(f"{'variant':<22}{'wall s':>8}{'cpu s':>8}{'knn_acc':>9}{'np@10':>8}  wall s per step")
    rows = {}
    for name in names:
        if cold_dir is not None:  # a fresh, empty numba cache for every variant
            sub = tempfile.mkdtemp(dir=cold_dir.name)
            env["NUMBA_CACHE_DIR"] = sub
        result = run_variant(name, variants[name], str(args.latent), env)
        if result is None:
            continue
        timing, xy = result
        acc = knn_accuracy(xy, labels, args.val_fraction, args.seed)
        npk = neighbourhood_preservation(latent, xy, seed=args.seed)
        rows[name] = (timing, acc, npk)
        print(
            f"{name:<22}{timing['wall']:>8.1f}{timing['cpu']:>8.1f}{acc:>9.3f}{npk:>8.3f}"
            f"  {timing['steps'] or ''}",
            flush=True,
        )
    ref = rows.get("umap-learn-default")
    if ref is not None:
        print("ratio against umap-learn's default UMAP().fit_transform (wall, cpu):")
        for name, (timing, _, _) in rows.items():
            wall, cpu = timing["wall"] / ref[0]["wall"], timing["cpu"] / ref[0]["cpu"]
            print(f"  {name:<22}{wall:>6.2f}x {cpu:>6.2f}x")
    if cold_dir is not None:
        cold_dir.cleanup()


# --------------------------------------------------------------------------- attribution


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def _attribution_model():
    """samplescope's own MNIST CNN when available, else an equivalent ~30k-parameter one."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    try:
        from samplescope.models.cnn import SmallCNN

        return SmallCNN().eval(), "samplescope.models.cnn.SmallCNN"
    except ImportError:
        pass

    class SmallCNN(nn.Module):  # 28x28 -> 10 classes
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
            self.fc1 = nn.Linear(32 * 7 * 7, 16)
            self.fc2 = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)  # (B, 16, 14, 14)
            x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)  # (B, 32, 7, 7)
            return self.fc2(torch.relu(self.fc1(x.flatten(1))))

    return SmallCNN().eval(), "bench CNN"


def bench_attribution(repeat: int) -> None:
    import torch

    from samplescope.analysis.attribution import Attribution, gradcam_batch

    model, name = _attribution_model()
    n_params = sum(p.numel() for p in model.parameters())
    x = torch.rand(1, 28, 28)
    xb = torch.rand(1000, 1, 28, 28)
    tb = torch.randint(0, 10, (1000,))
    print(f"\nattribution: {name}, {n_params} parameters, 28x28 input")
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        print(f" torch threads {threads}")
        for method, goal in (("gradcam", 30), ("integrated_gradients", 300), ("saliency", None)):
            attr = Attribution(model, method, n_steps=50)
            ms = _median_ms(lambda a=attr: a.attribute(x, target=3), repeat)
            target = f"(target < {goal} ms)" if goal else ""
            print(f"  {method:<22}{ms:>8.1f} ms single {target}")
        t = time.perf_counter()
        gradcam_batch(model, xb, tb)
        secs = time.perf_counter() - t
        print(
            f"  gradcam_batch 1000    {secs * 1000:>8.1f} ms "
            f"({secs * 70:.1f} s extrapolated to 70,000)"
        )
        # predicted and true class per input, equal for 97% of inputs (a 97% accurate model)
        both = np.stack([tb.numpy(), np.where(np.arange(1000) % 33 == 0, 9 - tb.numpy(), tb)], 1)
        t = time.perf_counter()
        gradcam_batch(model, xb, both)
        secs = time.perf_counter() - t
        print(
            f"  gradcam_batch 1000x2  {secs * 1000:>8.1f} ms "
            f"({secs * 70:.1f} s extrapolated to 70,000; pred + true class, 97% equal)"
        )
        t = time.perf_counter()
        Attribution(model, "gradcam").attribute(xb, tb)
        secs = time.perf_counter() - t
        print(f"  captum LayerGradCam 1000 {secs * 1000:>5.1f} ms (one call, for reference)")
    torch.set_num_threads(default_threads)


# --------------------------------------------------------------------------- neighbours


def bench_neighbors(latent: np.ndarray, repeat: int, seed: int) -> None:
    from samplescope.analysis.neighbors import NeighborIndex

    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    index = NeighborIndex().fit(latent)
    fit_s = time.perf_counter() - t
    n = len(latent)
    mask = rng.random(n) < 0.3
    rows = iter(rng.integers(0, n, 10 * repeat + 10))
    group = rng.choice(n, 200, replace=False)
    print(f"\nneighbours on {latent.shape}: fit {fit_s * 1000:.0f} ms")
    print(
        f"  query k=10            {_median_ms(lambda: index.query([next(rows)], 10), repeat):>7.2f}"
        " ms (target < 5 ms)"
    )
    print(
        f"  query k=10, 30% mask  "
        f"{_median_ms(lambda: index.query([next(rows)], 10, mask=mask), repeat):>7.2f} ms"
    )
    print(
        f"  query_set 200 rows    {_median_ms(lambda: index.query_set(group, 10), repeat):>7.2f} ms"
    )


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("latent", type=Path, help="(N, D) float32 .npy")
    parser.add_argument("labels", type=Path, help="(N,) int .npy")
    parser.add_argument(
        "--methods",
        default="umap,tsne,pca",
        help="comma-separated variants to time (umap, tsne, pca)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar='NAME={"method":...}',
        help="an extra variant: Projection keyword arguments as JSON",
    )
    parser.add_argument(
        "--skip-umap-default",
        action="store_true",
        help="do not time umap-learn's default UMAP().fit_transform",
    )
    parser.add_argument(
        "--cold-numba",
        action="store_true",
        help="give every variant an empty numba cache (a first-ever run)",
    )
    parser.add_argument("--skip-projection", action="store_true")
    parser.add_argument("--skip-attribution", action="store_true")
    parser.add_argument("--skip-neighbors", action="store_true")
    parser.add_argument("--val-fraction", type=float, default=1 / 7)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    latent = np.load(args.latent).astype(np.float32)
    labels = np.load(args.labels)
    if not args.skip_projection:
        bench_projection(args, latent, labels)
    if not args.skip_attribution:
        bench_attribution(args.repeat)
    if not args.skip_neighbors:
        bench_neighbors(latent, args.repeat, args.seed)


if __name__ == "__main__":
    main()

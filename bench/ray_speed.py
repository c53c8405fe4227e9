"""The Ray engine against the embedded one: `analyze` on MNIST repeated to N samples.

    python bench/ray_speed.py [--sizes 20000,100000] [--million] [--workers 2] [--weights RUN] [--out DIR]

For each size N, a run of bench/mnist_repeated.py (MNIST's 70,000 images repeated to N
samples) with the default CNN (seeded, untrained: throughput does not depend on the
weights; ``--weights RUN`` takes a trained run's) is made once, then analysed twice,
each analysis in a fresh process timed from process start to committed run (imports,
Ray's start and shutdown included):

- ``embedded``: the default engine, torch on every core in one process;
- ``ray``: ``--engine ray`` on a local Ray instance started for the job, ``--workers``
  actors of one CPU each, an object store of 1 KiB a sample (at least 256 MiB).

Printed per size and engine: wall seconds, every stage's seconds (the per-sample pass with
opening the run, loading the model and, for Ray, starting it; neighbours; map; insights;
write), samples per second per worker in that pass (the embedded engine is one worker:
one process, torch on every core), for Ray also the rate once shards flow, how long the
first shard took and the row stages it ran, the driver's peak RSS (until the pass
returned, and in all), the pass's outputs that the driver must hold (logits, latent,
sketches: they grow with N) and the driver's peak less them (what must not grow with N),
and Ray's time as a ratio of the embedded engine's. ``--million`` adds N = 1,000,000
(tens of minutes on 2 cores). The load average (1, 5, 15 minutes) is printed at the start
and end of every analysis: on a shared machine the figures are noisy.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
INTEGRATION = HERE / "mnist_repeated.py"


def _env(n: int, out: Path) -> dict[str, str]:
    env = {**os.environ, "SAMPLESCOPE_REPEAT_N": str(n), "SAMPLESCOPE_CONFIG_DIR": str(out / "config")}
    env.setdefault("SAMPLESCOPE_DATA_DIR", str(out / "data"))
    return env


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------- children


def child_create(run: Path, weights: str | None) -> dict:
    import torch

    import samplescope
    from samplescope.data.mnist import fetch_mnist
    from samplescope.models.cnn import SmallCNN

    fetch_mnist(progress=False)
    torch.manual_seed(0)
    model = samplescope.open_run(weights).model().cpu() if weights else SmallCNN()
    t = time.perf_counter()
    samplescope.create_run(str(INTEGRATION), model, run, overwrite=True, progress=False)
    return {"seconds": time.perf_counter() - t}


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _nbytes(outputs: tuple) -> int:
    """Bytes of the pass's outputs: arrays, and the sketches' arrays."""
    total = 0
    for o in outputs:
        if isinstance(o, np.ndarray):
            total += o.nbytes
        elif o is not None:
            total += sum(v.nbytes for v in vars(o).values() if isinstance(v, np.ndarray))
    return total


def child_analyze(run: Path, engine: str, workers: int) -> dict:
    import samplescope
    from samplescope.engines import RayEngine
    from samplescope.pipeline import analyze

    # the driver's peak RSS until the per-sample pass returns (then come neighbours, map, insights)
    passed: dict[str, float] = {}

    def timed(pass_fn):
        def wrapper(*args, **kwargs):
            passed["before_gib"] = _peak_gib()  # imports, the run, the model (and Ray's client)
            out = pass_fn(*args, **kwargs)
            passed["peak_rss_gib"] = _peak_gib()
            passed["outputs_gib"] = _nbytes(out) / 2**30
            return out
        return wrapper

    if engine == "embedded":
        analyze._encode_pass = timed(analyze._encode_pass)
        chosen = "embedded"
    else:
        # room for a row stage's objects (the fitted index with the latent, ~0.5 KiB a sample) without
        # spilling them to disk: 1 KiB a sample, at least 256 MiB (1M samples: ~1 GiB)
        store = max(256 * 2**20, 1024 * int(os.environ.get("SAMPLESCOPE_REPEAT_N", "0")))
        chosen = RayEngine(workers=workers, num_cpus=workers, object_store_memory=store)
        chosen.encode_pass = timed(chosen.encode_pass)
    summary = samplescope.analyze_run(run, projection="pca", progress=False, engine=chosen)
    return {"stages": summary["seconds"], "engine": summary["engine"], "peak_rss_gib": _peak_gib(),
            "pass_rss_gib": passed["peak_rss_gib"], "outputs_gib": passed["outputs_gib"],
            "before_pass_gib": passed["before_gib"]}


def _child(args: list[str], env: dict[str, str]) -> dict:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


# ---------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="20000,100000")
    p.add_argument("--million", action="store_true", help="add N = 1,000,000")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--weights", help="a trained MNIST run whose model to use (default: seeded, untrained)")
    p.add_argument("--out", help="folder for the runs (default: a temporary one)")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        stage, *rest = args.child
        if stage == "create":
            result = child_create(Path(rest[0]), rest[1] if len(rest) > 1 else None)
        else:
            result = child_analyze(Path(rest[0]), rest[1], int(rest[2]))
        print(json.dumps(result))
        return

    sizes = [int(s) for s in args.sizes.split(",") if s] + ([1_000_000] if args.million else [])
    out = Path(args.out or tempfile.mkdtemp(prefix="ray-speed-"))
    print(f"load average before: {_load()}  (cores: {os.cpu_count()}, ray workers: {args.workers})")
    rows = []
    for n in sizes:
        run = out / f"run-{n}"
        env = _env(n, out)
        made = _child(["create", str(run), *([args.weights] if args.weights else [])], env)
        print(f"N={n:,}: run made in {made['wall']:.1f} s (load {_load()})", flush=True)
        res = {}
        for engine in ("embedded", "ray"):
            load_start = _load()
            r = _child(["analyze", str(run), engine, str(args.workers)], env)
            r["load"] = f"{load_start} -> {_load()}"
            workers = 1 if engine == "embedded" else r["engine"]["workers"]
            per_worker = n / r["stages"]["inference"] / workers
            res[engine] = r
            steady = ""
            if engine == "ray" and r["engine"].get("samples_per_s"):
                steady = (f"  once shards flow: {r['engine']['samples_per_s'] / workers:,.0f} samples/s/worker, "
                          f"{r['engine']['samples_per_worker_s']:,.0f} per second of a worker's own work, "
                          f"first shard after {r['engine']['first_shard_s']:.1f} s")
            for what, st in (r["engine"].get("stages") or {}).items():  # the row stages on Ray
                steady += f"\n           row stage {what}: {st['calls']} call(s), {st['rows']:,} rows, {st['seconds']:.1f} s"
            st = r["stages"]
            print(f"  {engine:<8} wall {r['wall']:7.1f} s  pass {st['inference']:7.1f} s  "
                  f"{per_worker:8.0f} samples/s/worker  driver peak RSS {r['peak_rss_gib']:.2f} GiB "
                  f"({r['pass_rss_gib']:.2f} until the pass returned, of which the pass's outputs "
                  f"{r['outputs_gib']:.2f}: {r['pass_rss_gib'] - r['outputs_gib']:.2f} beside them; "
                  f"{r['before_pass_gib']:.2f} before the pass)  (load {r['load']})\n"
                  f"           stages: neighbours {st['neighbors']:.1f} s, map {st['projection']:.1f} s, "
                  f"insights {st['insights']:.1f} s, write {st['write']:.1f} s, analyze {st['total']:.1f} s, "
                  f"outside analyze_run (imports, Ray's shutdown) {r['wall'] - st['total']:.1f} s{steady}",
                  flush=True)
        ratio = res["ray"]["wall"] / res["embedded"]["wall"]
        rows.append((n, res, ratio))
        print(f"  ray / embedded: {ratio:.2f}x wall (pass {res['ray']['stages']['inference'] / res['embedded']['stages']['inference']:.2f}x)",
              flush=True)
    print(f"load average after: {_load()}")
    print("\n| N | engine | wall s | pass s | neighbours / map / insights s | samples/s/worker | "
          "driver peak RSS GiB: pass / its outputs / all | load | ray/embedded |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for n, res, ratio in rows:
        for engine, r in res.items():
            workers = 1 if engine == "embedded" else r["engine"]["workers"]
            st = r["stages"]
            print(f"| {n:,} | {engine} | {r['wall']:.1f} | {st['inference']:.1f} | "
                  f"{st['neighbors']:.1f} / {st['projection']:.1f} / {st['insights']:.1f} | "
                  f"{n / st['inference'] / workers:,.0f} | "
                  f"{r['pass_rss_gib']:.2f} / {r['outputs_gib']:.2f} / {r['peak_rss_gib']:.2f} | {r['load']} | "
                  f"{f'{ratio:.2f}x' if engine == 'ray' else ''} |")


if __name__ == "__main__":
    main()

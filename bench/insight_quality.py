"""Planted-fault table for the README: do the insights find what was planted in MNIST?

    SAMPLESCOPE_MNIST_MIRROR=... .venv/bin/python bench/insight_quality.py [--limit N] [--recipe fast]

Trains one model on clean MNIST (the first ``--limit`` training images, all of them by
default), analyses it on clean MNIST and on MNIST whose validation samples carry the
faults of samplescope/analysis/insights/planted.py (rotated 1s, thickened 7s, 100 flipped
labels, 40 copies of training images of each kind: exact, shifted, rescaled, re-encoded),
and prints the table: per fault, found or not, the rank of the insight that finds it
among the insights of its kind, and whether its explanation names the planted column;
then the clean run's medium-or-higher insights. The reference for the timings is the
clean analysis in the same process (the planted one's ratio to it), with the load average.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import samplescope
from samplescope.analysis.insights.planted import evaluate, planted_mnist, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N training images (default all)")
    parser.add_argument("--recipe", default="fast", choices=["fast", "default"])
    parser.add_argument("--projection", default="pca", help="map method (the insights do not use it)")
    args = parser.parse_args()
    n_train = args.limit or 60_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clean_integ, _ = planted_mnist(n_train=n_train, faults=False)
        t = time.perf_counter()
        clean = samplescope.train_run(clean_integ, root / "clean", recipe=args.recipe, limit=args.limit,
                                      progress=False)
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        samplescope.analyze_run(clean, projection=args.projection, progress=False, integration=clean_integ)
        clean_s = time.perf_counter() - t
        integ, planted = planted_mnist(n_train=n_train, faults=True)
        run = samplescope.create_run(integ, samplescope.open_run(clean).model(), root / "planted",
                                     limit=args.limit, progress=False)
        t = time.perf_counter()
        samplescope.analyze_run(run, projection=args.projection, progress=False, integration=integ)
        planted_s = time.perf_counter() - t
        clean_run, planted_run = samplescope.open_run(clean), samplescope.open_run(run)
        result = evaluate(planted_run, planted, clean=clean_run)
        acc = clean_run.info["analysis"]["accuracy"]
        load = os.getloadavg()
        print(f"MNIST, {n_train:,} training images, recipe {args.recipe}: validation accuracy "
              f"{acc['validation']:.2%} (clean), {planted_run.info['analysis']['accuracy']['validation']:.2%} "
              "(planted)")
        print(f"train {train_s:.0f} s; analyse clean {clean_s:.0f} s, planted {planted_s:.0f} s "
              f"({planted_s / clean_s:.2f}x the clean analysis); load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        print()
        print(table(result))
        print("\nclean run, medium or higher:")
        for line in result["clean"]["medium_texts"]:
            print("  " + line)
        print("\nplanted run, top insights:")
        for ins in planted_run.insights()[:8]:
            print(f"  [{ins.severity:.2f}] {ins.kind}: {ins.text}")


if __name__ == "__main__":
    main()

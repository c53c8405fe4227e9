"""``Run.aggregate`` in DuckDB (store/aggregate.py) against the rows read into pandas and
binned there (analysis/metrics.py, the reference it is tested against), on a synthetic
samples table.

    python bench/aggregate_speed.py [--sizes 1000000,10000000] [--repeat 3]

For each size: a DuckDB samples table of N rows (loss, confidence, label, correct, subset, map)
in a temporary folder; each aggregate the dashboards ask (mean loss per confidence bin;
split by label; accuracy per label) timed both ways, the best of ``--repeat``, with the
Python heap's peak (tracemalloc) of each way, the answers checked equal. Prints the
seconds, the ratio pandas / DuckDB and the load average beside each line. Asserts nothing
about time.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from samplescope.analysis.metrics import aggregate as in_pandas
from samplescope.store.aggregate import aggregate as in_duckdb
from samplescope.store.database import RunDatabase

LIMITS = {"max_bins": 10_000, "max_groups": 1_000, "max_values": 10_000}
CASES = {  # name: x, y, by, bins
    "loss per confidence bin": ("confidence", "loss", None, 20),
    "loss per confidence bin, by label": ("confidence", "loss", "label", 20),
    "accuracy per label": ("label", "correct", None, 10),
}


@contextlib.contextmanager
def synthetic_table(n: int) -> Iterator[RunDatabase]:
    """The synthetic samples table of ``n`` rows (:func:`_table`) in a temporary folder, open
    read-only; the folder is removed on exit (2M rows take 33 MiB on disk)."""
    with tempfile.TemporaryDirectory(prefix="samplescope-queries-") as folder:
        _table(Path(folder) / "samples.duckdb", n)
        db = RunDatabase(Path(folder) / "samples.duckdb")
        try:
            yield db
        finally:
            db.close()


def _table(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    db = RunDatabase(path, writable=True)
    step = 2_000_000
    frames = []
    for start in range(0, n, step):
        m = min(step, n - start)
        frames.append(pd.DataFrame({
            "sample_id": np.arange(start, start + m, dtype=np.int64),
            "subset": np.where(rng.random(m) < 0.8, "train", "validation"),
            "label": rng.integers(0, 10, m).astype(np.int64),
            "confidence": rng.random(m).astype(np.float32),
            "loss": rng.exponential(0.3, m).astype(np.float32),
            "correct": rng.random(m) < 0.9,
            "map_x": rng.normal(size=m).astype(np.float32),
            "map_y": rng.normal(size=m).astype(np.float32),
        }))  # fmt: skip
    db.write_samples(pd.concat(frames, ignore_index=True))
    db.close()


def _in_pandas(db: RunDatabase, columns: list[str], x: str, y: str, by: str | None, bins: int) -> pd.DataFrame:
    """The reference: the subset's columns read into pandas, then binned there."""
    return in_pandas(db.samples(columns, subset="validation"), x, y, by, bins, **LIMITS)


def _timed(fn, repeat: int) -> tuple[float, float, object]:
    """The best of ``repeat`` calls of ``fn`` (seconds), the Python heap's peak of one more
    (MiB, tracemalloc), and its answer."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return best, peak, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000000,10000000")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        with synthetic_table(n) as db:
            _measure(db, n, args.repeat)


def _measure(db: RunDatabase, n: int, repeat: int) -> None:
    """Every case of this benchmark on the n-row table ``db``, printed."""
    print(f"{n:,} rows; load {os.getloadavg()[0]:.2f}")
    for name, (x, y, by, bins) in CASES.items():
        columns = list(dict.fromkeys(c for c in (x, y, by) if c))
        pandas_way = functools.partial(_in_pandas, db, columns, x, y, by, bins)
        duckdb_way = functools.partial(in_duckdb, db, x, y, by, subset="validation", bins=bins, **LIMITS)
        t_pd, m_pd, ref = _timed(pandas_way, repeat)
        t_db, m_db, got = _timed(duckdb_way, repeat)
        pd.testing.assert_frame_equal(ref, got, rtol=1e-6)
        print(f"  {name:36s} pandas {t_pd:6.3f} s ({m_pd:7.1f} MiB)  duckdb {t_db:6.3f} s ({m_db:5.1f} MiB)  "
              f"ratio {t_pd / t_db:5.2f}x  load {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

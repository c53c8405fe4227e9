"""What a compute worker's start costs on a large run, and the two pieces made cheaper.

    python bench/worker_start.py RUN [--repeat 3]

``RUN`` is an analysed run (e.g. a bench/scale_speed.py run of 10M samples). Each figure is
the median of ``--repeat`` tries, the load average beside it:

- imports, each in a fresh interpreter: the modules a compute worker runs
  (``samplescope.server.heavy`` and ``.state``) against the same plus the web app
  (``samplescope.server.app``), which importing the package loaded before it was made lazy;
- the sample-id check of ``Run`` (ids 0..N-1): the query it runs now (ids against the
  table's row ids, one scan) against counting the distinct ids, on the same database;
- a whole worker start in a fresh interpreter, as ``server/heavy.py`` makes one: imports,
  ``open_run``, the server state, the map's viewport columns (``warm_viewports``).

Prints seconds and ratios. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

_WORKER = """
import sys, time
t0 = time.perf_counter()
import samplescope.server.heavy, samplescope.server.state as st
t1 = time.perf_counter()
import samplescope
from samplescope.server.settings import Settings
run = samplescope.open_run(sys.argv[1])
t2 = time.perf_counter()
state = st.ServerState(run, Settings(heavy_processes=False, prewarm=False))
t3 = time.perf_counter()
state.warm_viewports(wait=True)
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def _fresh(code: str, *args: str) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True).stdout


def _timed_import(modules: str) -> float:
    code = f"import time; t = time.perf_counter(); import {modules}; print(time.perf_counter() - t)"
    return float(_fresh(code))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    reps = range(args.repeat)
    print(f"{args.run}; {args.repeat} tries each; {_load()}")

    worker = statistics.median(_timed_import("samplescope.server.heavy, samplescope.server.state") for _ in reps)
    with_app = statistics.median(
        _timed_import("samplescope.server.app, samplescope.server.heavy, samplescope.server.state") for _ in reps)
    print(f"imports: the worker's modules {worker:.2f} s, with the web app {with_app:.2f} s "
          f"({with_app / worker:.2f}x); {_load()}")

    import samplescope

    run = samplescope.open_run(args.run)
    queries = {
        "ids against row ids": 'SELECT count(*), min("sample_id"), max("sample_id"), '
                               'bool_and("sample_id" = rowid) FROM samples',
        "distinct ids counted": 'SELECT count(*), min("sample_id"), max("sample_id"), '
                                'count(DISTINCT "sample_id") FROM samples',
    }
    seconds = {}
    for name, sql in queries.items():
        tries = []
        for _ in reps:
            t = time.perf_counter()
            run.db.fetch(sql)
            tries.append(time.perf_counter() - t)
        seconds[name] = statistics.median(tries)
    rows = len(run)
    run.close()
    a, b = seconds.values()
    print(f"id check over {rows:,} rows: ids against row ids {a:.3f} s, distinct ids counted {b:.3f} s "
          f"({b / a:.1f}x); {_load()}")

    parts = [[float(v) for v in _fresh(_WORKER, str(args.run)).split()] for _ in reps]
    median = [statistics.median(p[i] for p in parts) for i in range(4)]
    print("worker start: imports {:.2f} s, open_run {:.2f} s, server state {:.2f} s, viewport columns {:.2f} s; "
          "{:.2f} s in all; {}".format(*median, sum(median), _load()))


if __name__ == "__main__":
    main()

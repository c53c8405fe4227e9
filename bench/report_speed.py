"""``samplescope report`` of a large run: the report as it is (above ``map_queries.FULL_MAX``
samples its tables hold the map overview's draw, its numbers come from DuckDB) against the
same code with every row loaded (``FULL_MAX`` raised past the run's size: what the report
did before), each in a fresh process.

    python bench/report_speed.py RUN [--rounds 2] [--ways drawn,every]

``RUN`` is an analysed run (e.g. bench/scale_speed.py's 1M run; its integration must be
importable as it was for the analysis, so pass the same environment). Each round builds the
report both ways into temporary folders, timed from the process's start, with the process's
peak RSS; prints each round, then the medians, the ratio every-row / drawn, and the load
average beside each line. Asserts nothing about time.
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

_CHILD = """
import json, resource, sys, time
t = time.perf_counter()
from samplescope.store import map_queries
if sys.argv[3] == "every":
    map_queries.FULL_MAX = 10**12  # every row in the report's tables, as before the overview draw
from samplescope.report.build import build_report
build_report(sys.argv[1], sys.argv[2], progress=False)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def _one(run: Path, way: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="samplescope-report-") as tmp:
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _CHILD, str(run), str(Path(tmp) / "report"), way],
                              capture_output=True, text=True, check=False)  # fmt: skip
        wall = time.perf_counter() - t
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1], "wall_s": wall}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--ways", default="drawn,every", help="drawn (the report as it is), every (every row loaded)")
    args = p.parse_args()
    ways = args.ways.split(",")
    print(f"{args.run}; {args.rounds} rounds; {_load()}")
    found: dict[str, list[dict]] = {w: [] for w in ways}
    for i in range(args.rounds):
        for way in ways:
            r = _one(args.run, way)
            found[way].append(r)
            what = r["error"] if "error" in r else f"{r['wall_s']:7.1f} s wall, peak RSS {r['peak_rss_gib']:.2f} GiB"
            print(f"round {i + 1} {way:6s} {what}  {_load()}")
    ok = {w: [r for r in rs if "error" not in r] for w, rs in found.items()}
    med = {w: (statistics.median(r["wall_s"] for r in rs), statistics.median(r["peak_rss_gib"] for r in rs))
           for w, rs in ok.items() if rs}  # fmt: skip
    for w, (s, m) in med.items():
        print(f"median {w:6s} {s:7.1f} s wall, peak RSS {m:.2f} GiB  {_load()}")
    if "drawn" in med and "every" in med:
        (sd, md), (se, me) = med["drawn"], med["every"]
        print(f"every-row / drawn: {se / sd:.2f}x the time, {me / md:.2f}x the peak RSS  {_load()}")


if __name__ == "__main__":
    main()

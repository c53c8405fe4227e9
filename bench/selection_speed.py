"""A map selection's summary in DuckDB (store/serving.selection_summary over
store/map_queries.shape_where) against its rows read into pandas and summarised there (what
``/api/selection`` did before; the reference here), on a synthetic samples table.

    python bench/selection_speed.py [--sizes 1000000,10000000] [--repeat 3]

For each size: bench/aggregate_speed.py's table (the map a 2-D normal); a box over the
middle of the map (about half of the samples), a 14-point star lasso and a list of 10,000
ids; each summarised both ways, the best of ``--repeat``, with the Python heap's peak
(tracemalloc), the answers checked equal. Prints seconds, the ratio and the load average.
Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import functools
import os

import numpy as np
from aggregate_speed import _timed, synthetic_table
from matplotlib.path import Path as MplPath

from samplescope.store import map_queries, serving
from samplescope.store.database import RunDatabase
from samplescope.store.serving import Condition

STAR = [[1.6 * r * np.cos(a), 1.6 * r * np.sin(a)]
        for a, r in zip(np.linspace(0, 2 * np.pi, 14, endpoint=False), np.where(np.arange(14) % 2 == 0, 1.0, 0.35))]  # fmt: skip


def in_pandas(db: RunDatabase, shape: dict) -> dict:
    """The reference: the selection's rows read into pandas (the lasso's by its bounding box,
    then matplotlib's even-odd test), summarised there."""
    columns = ["label", "correct", "loss", "subset", "map_x", "map_y"]
    if "ids" in shape:
        rows = db.samples(columns, where={"sample_id": shape["ids"]})
    else:
        pts = np.asarray(shape.get("polygon") or [[shape["box"][0], shape["box"][2]], [shape["box"][1], shape["box"][3]]])
        lo, hi = pts.min(0), pts.max(0)
        rows = db.samples(columns, where={"map_x": (lo[0], hi[0]), "map_y": (lo[1], hi[1])})
        if "polygon" in shape:
            rows = rows[MplPath(pts).contains_points(rows[["map_x", "map_y"]].to_numpy(np.float64))]
    wrong = ~rows["correct"]
    mix = rows.assign(wrong=wrong).groupby("label")["wrong"].agg(["size", "sum"]).reset_index()
    mix = mix.sort_values(["size", "label"], ascending=[False, True])
    top = rows.sort_values(["loss", "sample_id"], ascending=[False, True])["sample_id"].head(60)
    return {"count": len(rows), "accuracy": float(rows["correct"].mean()), "mean_loss": float(rows["loss"].mean()),
            "class_mix": [tuple(int(v) for v in r) for r in mix[["label", "size", "sum"]].itertuples(index=False)],
            "subsets": rows["subset"].value_counts().to_dict(), "examples": top.tolist()}  # fmt: skip


def in_duckdb(db: RunDatabase, shape: dict) -> dict:
    if "ids" in shape:
        clause, params = serving.where_sql([Condition("sample_id", "in", shape["ids"])], db.columns())
    else:
        clause, params = map_queries.shape_where(db, [], **shape)
    return serving.selection_summary(db, clause, params, class_mix=True)


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
    ids = np.random.default_rng(1).choice(n, 10_000, replace=False).tolist()
    shapes = {"box over half the map": {"box": (-0.95, 0.95, -0.95, 0.95)}, "14-point star lasso": {"polygon": STAR},
              "10,000 ids": {"ids": sorted(ids)}}  # fmt: skip
    for name, shape in shapes.items():
        t_pd, m_pd, want = _timed(functools.partial(in_pandas, db, shape), repeat)
        t_db, m_db, got = _timed(functools.partial(in_duckdb, db, shape), repeat)
        assert {k: v for k, v in got.items() if k not in ("accuracy", "mean_loss")} == {
            k: v for k, v in want.items() if k not in ("accuracy", "mean_loss")}, name
        assert np.isclose(got["accuracy"], want["accuracy"]) and np.isclose(got["mean_loss"], want["mean_loss"])
        print(f"  {name:24s} {got['count']:>10,} inside  pandas {t_pd:6.3f} s ({m_pd:7.1f} MiB)  "
              f"duckdb {t_db:6.3f} s ({m_db:5.1f} MiB)  ratio {t_pd / t_db:5.2f}x  load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

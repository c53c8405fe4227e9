"""One row stage on Ray: ``fn`` over chunks of rows as a Ray Data ``map_batches`` of tasks.

The driver puts the function (with what it closes over: a fitted faiss index, a fitted
map's sample) and the row arrays into Ray's object store once; each task reads them from there
(zero-copy for arrays on its node), computes one chunk of rows and hands its outputs
back through the object store. The driver counts every row exactly once and puts the
chunks together in row order. Tasks, not actors: their worker processes are Ray's own
pool, reused from one stage to the next, so a stage costs no model load or actor
start-up; a task lost with its worker is retried by Ray (its default, 3 times).

A chunk is a multiple of ``align`` rows, so a function that batches internally (the
neighbour engine searches 8,192 rows per faiss call) runs the very batches it runs on
the driver, and the answers are the same.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np

from samplescope.errors import RunError

CHUNKS_PER_WORKER = 4  # chunks per worker: a slow worker leaves less of the stage undone


def chunk_plan(n: int, align: int, workers: int) -> list[tuple[int, int]]:
    """(start, stop) chunks of ``0 .. n - 1``, each a multiple of ``align`` rows but the last."""
    per = max(1, math.ceil(n / max(1, workers * CHUNKS_PER_WORKER)))
    size = align * max(1, math.ceil(per / align))
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def _chunk(batch: dict[str, np.ndarray], refs: list[Any]) -> dict[str, np.ndarray]:
    """Ray Data's function for one chunk: ``fn(start, stop, *array chunks)``, pickled back."""
    import ray

    fn, *arrays = ray.get(refs)
    starts, outs = [], []
    for start, stop in zip(batch["start"], batch["stop"], strict=True):
        start, stop = int(start), int(stop)
        out = tuple(np.asarray(o) for o in fn(start, stop, *[a[start:stop] for a in arrays]))
        starts.append(start)
        outs.append(pickle.dumps(out, protocol=5))
    return {"start": np.array(starts, np.int64), "out": np.array(outs, dtype=object)}


def run_row_stage(fn: Any, n: int, arrays: Any, align: int, workers: int, cpus_per_worker: float,
                  what: str) -> tuple[np.ndarray, ...]:
    """``fn`` over rows ``0 .. n - 1`` on the Ray session of this process, in row order."""
    import ray

    plan = chunk_plan(n, align, workers)
    refs = [ray.put(fn), *[ray.put(np.ascontiguousarray(a)) for a in arrays]]
    ds = ray.data.from_items([{"start": a, "stop": b} for a, b in plan], override_num_blocks=len(plan))
    ds = ds.map_batches(_chunk, fn_kwargs={"refs": refs}, batch_size=1, batch_format="numpy",
                        num_cpus=cpus_per_worker, compute=ray.data.TaskPoolStrategy(size=workers))
    stops = dict(plan)
    outputs: list[np.ndarray] | None = None
    seen = np.zeros(len(plan), np.int64)
    index = {a: i for i, (a, _) in enumerate(plan)}
    try:
        for row in ds.iter_rows():
            start = int(row["start"])
            out = pickle.loads(row["out"])
            if outputs is None:
                outputs = [np.empty((n, *o.shape[1:]), o.dtype) for o in out]
            for dst, o in zip(outputs, out, strict=True):
                dst[start : stops[start]] = o
            seen[index[start]] += 1
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise RunError(
            f"The Ray stage {what!r} over {n:,} rows failed ({type(exc).__name__}: {text[0][:300] if text else ''}); "
            "nothing was written and the previous analysis is intact; check the workers (`ray logs`) and run again."
        ) from exc
    finally:
        del refs
    if outputs is None or (seen != 1).any():
        bad = int(np.flatnonzero(seen != 1)[0]) if outputs is not None else 0
        raise RunError(
            f"The Ray stage {what!r} returned rows {plan[bad][0]}..{plan[bad][1] - 1} {int(seen[bad])} times "
            "(each chunk must come back exactly once); nothing was written and the previous analysis is intact."
        )
    return tuple(outputs)

"""One shard of the per-sample pass, as a Ray worker runs it, and the two files it leaves.

A shard is up to ``batch_size`` consecutive samples of one subset, named by its first
sample id. The worker (a callable class: one model per actor, loaded once) encodes
the shard's inputs, runs inference with the latent hook, sketches the pixels (raw and,
for images, aligned) and,
asked, makes Grad-CAM, with the same functions the embedded pass calls, then writes

- ``<start>.parquet``: the columns (``sample_id``, ``logits``, ``residual``, ``digest``),
- ``<start>.npz``: the arrays (``latent`` (B, D), ``z`` (B, m), ``gradcam`` (B, 2, H, W) and
  the aligned sketch ``aligned_z`` / ``aligned_residual`` / ``aligned_digest``),

each to a temporary name renamed into place, the Parquet file last: a shard is done
when its Parquet file exists. A retried shard rewrites the same two names, so however
often Ray retries it, each sample is written once. Each start of a shard leaves a mark
(``record_attempt``), so a shard whose worker keeps dying fails the job after
``max_retries`` retries instead of being retried for ever.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from samplescope.errors import RunError

PARQUET, ARRAYS = ".parquet", ".npz"


def shard_plan(sizes: dict[str, int], batch_size: int) -> list[dict[str, Any]]:
    """Shards in sample-id order, cut like the embedded pass's batches (per subset, ``batch_size``)."""
    shards, offset = [], 0
    for subset, n in sizes.items():
        for first in range(0, n, batch_size):
            count = min(batch_size, n - first)
            shards.append({"start": offset + first, "subset": subset, "first": first, "count": count})
        offset += n
    return shards


def shard_path(folder: Path, start: int, suffix: str) -> Path:
    return Path(folder) / f"{start:012d}{suffix}"


def write_shard(folder: Path, start: int, logits: np.ndarray, latent: np.ndarray, sketch: Any,
                gradcam: np.ndarray | None, aligned: Any = None) -> None:
    """The shard's arrays, then its columns, each written under a temporary name and renamed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, c = logits.shape
    arrays = shard_path(folder, start, ARRAYS)
    tmp = arrays.with_name(f".{arrays.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        extra = {} if gradcam is None else {"gradcam": gradcam}
        if aligned is not None:
            extra.update(aligned_z=aligned.z, aligned_residual=aligned.residual, aligned_digest=aligned.digest)
        np.savez(f, latent=latent, z=sketch.z, **extra)
    os.replace(tmp, arrays)
    table = pa.table({
        "sample_id": pa.array(np.arange(start, start + n, dtype=np.int64)),
        "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1), pa.float32()), c),
        "residual": pa.array(sketch.residual),
        "digest": pa.array(sketch.digest),
    })
    columns = shard_path(folder, start, PARQUET)
    tmp = columns.with_name(f".{columns.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, columns)


def record_attempt(folder: Path, start: int) -> int:
    """Mark one more start of shard ``start`` in ``folder`` and return how many there have been.

    Ray restarts a dead actor and re-runs its shard (its defaults, unbounded); these marks, on
    the run's storage that every worker reaches, bound the retries to ``max_retries``."""
    attempt = 1
    while True:  # the first free number: O(attempts) file creations, whatever the number of shards
        try:
            (Path(folder) / f".attempt-{start:012d}-{attempt}").touch(exist_ok=False)
            return attempt
        except FileExistsError:
            attempt += 1


def read_shard(folder: Path, start: int) -> dict[str, np.ndarray] | None:
    """A finished shard's columns and arrays, or None when its Parquet file is missing."""
    import pyarrow.parquet as pq

    columns = shard_path(folder, start, PARQUET)
    if not columns.exists():
        return None
    table = pq.read_table(columns)
    logits = table.column("logits").combine_chunks()
    out = {
        "sample_id": table.column("sample_id").to_numpy(),
        "logits": logits.values.to_numpy().reshape(len(table), logits.type.list_size),
        "residual": table.column("residual").to_numpy(),
        "digest": table.column("digest").to_numpy(),
    }
    with np.load(shard_path(folder, start, ARRAYS)) as arrays:
        out.update({k: arrays[k] for k in arrays.files})
    return out


class ShardWorker:
    """Ray Data's callable class: built once per actor (the run, its integration and model), then one
    call per shard. ``spec`` is what the driver settled: the run folder, which integration, the
    device, the latent layer, the fitted pixel sketches, the shard folder and the heatmaps asked for.

    Trust was settled on the driver, which loaded this integration and model under the user's
    trust rules before starting the job; the worker runs only that code.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        import torch

        from samplescope.run import open_run

        torch.set_num_threads(max(1, int(spec["threads"])))
        self.spec = spec
        self.run = open_run(spec["run"], trust=True, integration=_worker_integration(spec["integration"]),
                            device=spec["device"])
        self.integ = self.run.integration()
        self.model = self.run.model()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ray

        from samplescope.analysis.inference import run_inference
        from samplescope.pipeline.analyze import _gradcams_into

        spec, done, t0 = self.spec, [], time.perf_counter()
        for i in range(len(batch["start"])):
            start, count = int(batch["start"][i]), int(batch["count"][i])
            first = int(batch["first"][i])
            attempt = record_attempt(Path(spec["folder"]), start)
            if attempt > int(spec["max_retries"]) + 1:
                raise RunError(
                    f"shard {start} (samples {start}..{start + count - 1}) was started {attempt} times and "
                    f"its worker died each time (RayEngine max_retries={spec['max_retries']})"
                )
            x = self.integ.encode_inputs(str(batch["subset"][i]), np.arange(first, first + count))
            result = run_inference(self.model, [x], layer=spec["layer"])
            sketch = spec["sketch"].allocate(count)
            spec["sketch"].transform_into(sketch, 0, x)
            aligned = None
            if spec.get("aligned") is not None:  # the duplicate finder's shift-tolerant sketch
                aligned = spec["aligned"].allocate(count)
                spec["aligned"].transform_into(aligned, 0, x)
            gradcam = None
            if spec["heatmaps"] == "all":
                gradcam = np.zeros((count, 2, *self.run.info["input_shape"][-2:]), np.float16)
                _gradcams_into(gradcam, self.run, self.model, x, 0, result.logits.argmax(1),
                               np.asarray(batch["labels"][i], np.int64))
            write_shard(Path(spec["folder"]), start, result.logits, result.latent, sketch, gradcam, aligned)
            done.append((start, count))
        node = ray.get_runtime_context().get_node_id()
        return {
            "start": np.array([s for s, _ in done], np.int64),
            "count": np.array([c for _, c in done], np.int64),
            "pid": np.full(len(done), os.getpid(), np.int64),
            "busy_s": np.full(len(done), (time.perf_counter() - t0) / max(1, len(done))),  # this call's work
            "node": np.array([node] * len(done), dtype=object),
        }


def _worker_integration(spec: Any) -> Any:
    """The integration as this worker can load it: a built-in module name or an Integration object as
    they are; a file by its path when this machine sees it, else by its name in the working directory
    that Ray's runtime_env brought here."""
    if isinstance(spec, str) and spec.endswith(".py") and not Path(spec).exists():
        here = Path.cwd() / Path(spec).name
        if here.exists():
            return str(here)
    return spec

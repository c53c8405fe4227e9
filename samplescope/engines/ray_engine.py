"""The per-sample pass of `analyze` on a Ray cluster: Ray Data ``map_batches`` over shards of sample ids.

    RayEngine()                                   # a local Ray instance for this job, shut down after
    RayEngine(address="auto", workers=8, gpus_per_worker=1)   # join the cluster this machine is in

The driver fits the pixel sketches on a seeded sample (as the embedded pass does; in a thread
while Ray starts), cuts the samples into shards (:func:`samplescope.engines.shards.shard_plan`)
and streams them
through a pool of actors (:class:`~samplescope.engines.shards.ShardWorker`, one model per
actor, ``concurrency=workers``, ``num_gpus=gpus_per_worker``). Each shard leaves a Parquet
file and an array file in a temporary folder beside the run (so on the run's storage,
which every worker must reach); the driver counts every sample id exactly once, puts the
arrays together in sample-id order and hands them back to ``analyze``, which computes the
prediction columns, neighbours, map and insights and commits the run atomically as
always. The temporary folder is removed whatever happens: a failed or interrupted job
leaves the previous analysis as it was.

Ray Data restarts a dead actor (its default: without limit) and re-runs the shard it was
working on; ``max_retries`` bounds the re-runs of each shard (each start of a shard leaves a
mark in the shard folder), so a shard whose worker keeps dying fails the job with a
:class:`~samplescope.errors.RunError` that says so. A worker that dies between two shards
costs no shard: it is restarted and the job completes, even with ``max_retries=0``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm.auto import tqdm

from samplescope.engines.row_stage import run_row_stage
from samplescope.engines.shards import ShardWorker, read_shard, shard_plan
from samplescope.errors import ParameterError, RunError, SamplescopeError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install samplescope[ray]"
CONNECT_TIMEOUT_S = 5.0


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data  # the extra brings Ray Data and its dependencies too
    except ImportError as exc:
        raise SamplescopeError(
            f"--engine ray needs Ray, which is not installed here ({exc}); install it with "
            f"`{INSTALL_HINT}`, or use the embedded engine (the default)."
        ) from exc
    return ray


@dataclass
class RayEngine:
    """Run the per-sample pass on Ray.

    ``address``: None starts a local Ray instance for the job (and shuts it down after);
    ``"auto"`` joins the cluster this machine belongs to; ``host:port`` or ``ray://host:port``
    joins that one. ``workers``: actors, each with its own copy of the model (default: as many
    as the cluster's CPUs, or GPUs with ``gpus_per_worker``, allow). ``batch_size``: samples
    per shard (one Ray task). ``max_retries``: re-runs of a shard whose worker died (a worker
    that died between shards is restarted by Ray and re-runs nothing). ``num_cpus`` /
    ``object_store_memory`` size the local instance only.
    ``stage_min_rows``: the row stages after the pass (every row's kNN queries, placing every
    row on the fitted map) run on Ray from this many rows; smaller ones run on the driver,
    where they take less than Ray's tasks start in.
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    batch_size: int = 2048  # the embedded pass's batch: shards cut the same way
    max_retries: int = 3
    num_cpus: int | None = None
    object_store_memory: int | None = None
    stage_min_rows: int = 100_000
    stats_: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _held: ExitStack | None = field(default=None, init=False, repr=False)

    name: ClassVar[str] = "ray"

    def __post_init__(self) -> None:
        for what, value, low in [("workers", self.workers, 1), ("batch_size", self.batch_size, 1),
                                 ("gpus_per_worker", self.gpus_per_worker, 0),
                                 ("cpus_per_worker", self.cpus_per_worker, 0),
                                 ("max_retries", self.max_retries, 0),
                                 ("stage_min_rows", self.stage_min_rows, 0)]:
            if value is not None and (isinstance(value, bool) or not value >= low):
                raise ParameterError(f"RayEngine {what}={value!r} is out of range; pass a number >= {low}.")
        require_ray()

    def preflight(self) -> None:
        """Fail before any work when the cluster address does not answer."""
        if self.address is not None:
            _check_reachable(self.address)

    def describe(self) -> dict[str, Any]:
        """What ran where, for run.json's analysis summary."""
        return {"name": self.name, "address": self.address or "local", **self.stats_}

    @contextmanager
    def stages(self) -> Iterator[None]:
        """For the whole of one ``analyze``: the Ray session the pass starts stays up, and the row
        stages after it (:func:`samplescope.engines.stages.map_rows`: kNN graphs, map placement)
        run on it; shut down (when started here) at the end."""
        from samplescope.engines.stages import row_stages

        self.stats_ = {}
        with ExitStack() as held, row_stages(self._map_rows):
            self._held = held
            try:
                yield
            finally:
                self._held = None

    def _map_rows(self, fn: Any, n: int, arrays: Any, align: int, what: str) -> tuple[np.ndarray, ...] | None:
        """A row stage on Ray (see :mod:`samplescope.engines.stages`); None (run it here) when it is
        small or no Ray session is up."""
        import ray

        if n < self.stage_min_rows or not ray.is_initialized():
            return None
        t0 = time.perf_counter()
        workers = self._workers(max(1, n // align))
        out = run_row_stage(fn, n, arrays, align, workers, self.cpus_per_worker, what)
        entry = self.stats_.setdefault("stages", {}).setdefault(what, {"calls": 0, "rows": 0, "seconds": 0.0})
        entry["calls"] += 1
        entry["rows"] += n
        entry["seconds"] = round(entry["seconds"] + time.perf_counter() - t0, 2)
        return out

    # -- the pass ------------------------------------------------------------------

    def encode_pass(self, run: Any, integ: Any, model: Any, layer: str, labels: np.ndarray, heatmaps: str,
                    seed: int, progress: bool):
        """The embedded pass's outputs, made on Ray: logits (N, C), latent (N, D), the pixel
        sketch, the aligned sketch (image inputs; else None) and (``heatmaps="all"``) Grad-CAM
        (N, 2, H, W) float16, in sample-id order."""
        from samplescope.pipeline.analyze import SKETCH_SAMPLE
        from samplescope.pipeline.encode import fit_sketches

        sizes = {s: int(v) for s, v in run.info["subsets"].items()}
        n = len(labels)
        if n == 0:
            raise RunError(f"Run {run.path} has no samples to analyse; train it on a non-empty integration.")
        shards = shard_plan(sizes, self.batch_size)
        if heatmaps == "all":  # Grad-CAM's true-class target comes from the run's labels, as embedded
            for s in shards:
                s["labels"] = labels[s["start"] : s["start"] + s["count"]].astype(np.int64)
        folder = Path(run.path).resolve().parent
        # a sibling of the run (its storage, which every worker must reach), named as atomic_folder
        # names its copies, so a killed job's leftovers are cleaned up by the next write
        tmp = Path(tempfile.mkdtemp(prefix=f".{Path(run.path).name}.tmp-{os.getpid()}-ray-", dir=folder))
        try:
            # the sketches are fitted in a thread while Ray starts (a local instance's processes
            # come up meanwhile): the same fit as the embedded pass's, off the start-up's path
            with ThreadPoolExecutor(1, thread_name_prefix="samplescope-sketch") as pool:
                fitting = pool.submit(fit_sketches, integ, sizes, SKETCH_SAMPLE, seed, run.info.get("input_shape"))
                session = ray_session(self, _integration_folder(integ))
                with ExitStack() as here:
                    # inside stages(): the session stays up for the row stages after the pass
                    (self._held or here).enter_context(session)
                    sketches = fitting.result()
                    self._run_shards(run, integ, layer, sketches, heatmaps, shards, tmp, n, progress)
            return _assemble(tmp, shards, n, sketches, heatmaps, run)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _run_shards(self, run: Any, integ: Any, layer: str, sketches: tuple[Any, Any], heatmaps: str,
                    shards: list[dict[str, Any]], tmp: Path, n: int, progress: bool) -> None:
        import ray

        ray.data.DataContext.get_current().enable_progress_bars = False  # one bar: ours
        workers = self._workers(len(shards))
        spec = {
            "run": str(Path(run.path).resolve()),
            "integration": _integration_spec(integ),
            "device": "cuda" if self.gpus_per_worker > 0 else "cpu",
            "layer": layer,
            "sketch": sketches[0],
            "aligned": sketches[1],
            "heatmaps": heatmaps,
            "folder": str(tmp),
            "threads": self.cpus_per_worker,
            "max_retries": self.max_retries,
        }
        # Ray Data restarts a dead actor and re-runs its shard (its defaults: no deprecated
        # max_restarts / max_task_retries remote args); the shard's start marks bound the retries
        ds = ray.data.from_items(shards, override_num_blocks=len(shards)).map_batches(
            ShardWorker,
            fn_constructor_kwargs={"spec": spec},
            batch_size=1,  # one shard per call: a retry redoes exactly that shard
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),  # one model per actor, loaded once
            num_cpus=self.cpus_per_worker,
            num_gpus=self.gpus_per_worker or None,
        )
        bar = tqdm(total=n, desc=f"inference (ray, {workers} workers)", unit="sample", disable=not progress,
                   leave=False)
        nodes, pids = set(), set()
        t0 = time.perf_counter()
        first = last = None  # when the first and the last shard came back, and the samples in between
        after_first, busy = 0, 0.0
        try:
            for row in ds.iter_rows():  # streaming: rows come back as shards finish, anywhere
                bar.update(int(row["count"]))
                nodes.add(str(row["node"]))
                pids.add(int(row["pid"]))
                busy += float(row["busy_s"])
                last = time.perf_counter()
                if first is None:
                    first = last
                else:
                    after_first += int(row["count"])
        except Exception as exc:  # any failure of the job ends in one message
            raise _job_failed(run.path, exc, self.max_retries) from exc
        finally:
            bar.close()
        steady = after_first / (last - first) if first is not None and last > first else None
        self.stats_ |= {"workers": workers, "nodes": len(nodes), "worker_processes": len(pids),
                       "shards": len(shards), "batch_size": self.batch_size,
                       # start-up (Ray, actors, the model per actor) and the rate once shards flow
                       "first_shard_s": round(first - t0, 2) if first is not None else None,
                       "samples_per_s": round(steady, 1) if steady else None,
                       # what one worker does per second of its own work (encode, model, sketch, write)
                       "samples_per_worker_s": round(n / busy, 1) if busy > 0 else None}

    def _workers(self, n_shards: int) -> int:
        import ray

        resources = ray.cluster_resources()
        if self.gpus_per_worker > 0:
            fit = int(resources.get("GPU", 0) // self.gpus_per_worker)
        else:
            fit = int(resources.get("CPU", 1) // max(self.cpus_per_worker, 1e-9))
        if self.workers is None:
            return max(1, min(fit, n_shards))
        if self.workers > fit:
            log.warning("--workers %d: the cluster has room for %d now (%s); Ray Data may wait for the rest "
                        "(an autoscaling cluster adds nodes; pass fewer --workers otherwise)", self.workers, fit,
                        ", ".join(f"{k} {v:g}" for k, v in resources.items() if k in ("CPU", "GPU")))
        return min(self.workers, n_shards)


# -- the Ray session --------------------------------------------------------------


@contextmanager
def ray_session(engine: RayEngine, working_dir: Path | None = None) -> Iterator[None]:
    """Ray for the job: the process's own session when it has one (left running); a local instance
    started here (``address`` None, shut down after); or the cluster at ``address``, joined (and left)."""
    ray = require_ray()
    if ray.is_initialized():
        yield
        return
    if engine.address is None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=engine.num_cpus, object_store_memory=engine.object_store_memory,
                 include_dashboard=False, configure_logging=False)
    else:
        _check_reachable(engine.address)
        # a user's integration file travels to the workers in its folder (Ray's working_dir)
        env = {"working_dir": str(working_dir)} if working_dir is not None else None
        try:
            ray.init(address=engine.address, runtime_env=env, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise _unreachable(engine.address, str(exc).strip().splitlines()[0] if str(exc).strip() else "") \
                from exc
    try:
        yield
    finally:
        ray.shutdown()  # a joined cluster keeps running; only this driver leaves it


def _check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's own minute of retries, when ``host:port`` does not answer."""
    if address == "auto":
        return  # Ray looks the local cluster up itself and fails at once when there is none
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ParameterError(
            f"--ray-address {address!r} is not an address; pass host:port (the head node's GCS port, "
            "6379 by default), ray://host:10001, or auto."
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise _unreachable(address, exc.strerror or type(exc).__name__) from exc


def _unreachable(address: str, why: str) -> RunError:
    return RunError(
        f"Cannot reach a Ray cluster at --ray-address {address} ({why or 'no answer'}); start one there "
        "(`ray start --head`), check the head node's address and port, or drop --ray-address to start "
        "a local Ray instance for this job."
    )


def _job_failed(path: Any, exc: BaseException, retries: int) -> RunError:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, SamplescopeError):  # a worker's own message
        cause = getattr(cause, "cause", None) or cause.__cause__
    if cause is not None:
        why = str(cause)
    else:
        text = str(exc).strip().splitlines()
        why = f"{type(exc).__name__}: {text[0][:300] if text else ''}"
    return RunError(
        f"The Ray job analysing {path} failed ({why}); after {retries} retries per shard (RayEngine "
        "max_retries) nothing was written and the previous analysis is intact; check the workers "
        "(`ray logs`, their memory) and run again."
    )


# -- what travels to the workers --------------------------------------------------


def _integration_spec(integ: Any) -> Any:
    """How a worker loads the integration: a built-in by its module name, a user's file by its
    path, anything else (an Integration made in a notebook) as the object itself, pickled."""
    module = getattr(integ, "module", None) or ""
    source = getattr(integ, "source", None) or ""
    if module.startswith("samplescope.integrations."):
        return module
    if source.endswith(".py") and Path(source).is_file():
        return str(Path(source).resolve())
    return integ


def _integration_folder(integ: Any) -> Path | None:
    spec = _integration_spec(integ)
    return Path(spec).parent if isinstance(spec, str) and spec.endswith(".py") else None


# -- back on the driver -----------------------------------------------------------


def _assemble(folder: Path, shards: list[dict[str, Any]], n: int, sketches: tuple[Any, Any], heatmaps: str,
              run: Any):
    """Every shard's rows into arrays in sample-id order, each sample id counted: exactly once."""
    logits = latent = gradcam = None
    pixels = sketches[0].allocate(n)
    aligned = sketches[1].allocate(n) if sketches[1] is not None else None
    seen = np.zeros(n, np.int64)
    for s in shards:
        part = read_shard(folder, s["start"])
        if part is None:
            raise RunError(
                f"The Ray job analysing {run.path} finished without shard {s['start']} (samples "
                f"{s['start']}..{s['start'] + s['count'] - 1}); nothing was written and the previous "
                "analysis is intact; run again."
            )
        ids = part["sample_id"]
        if logits is None:
            logits = np.empty((n, part["logits"].shape[1]), np.float32)
            latent = np.empty((n, part["latent"].shape[1]), np.float32)
            if heatmaps == "all":
                gradcam = np.zeros((n, *part["gradcam"].shape[1:]), np.float16)
        np.add.at(seen, ids, 1)
        logits[ids], latent[ids] = part["logits"], part["latent"]
        pixels.z[ids], pixels.residual[ids], pixels.digest[ids] = part["z"], part["residual"], part["digest"]
        if aligned is not None:
            aligned.z[ids], aligned.residual[ids] = part["aligned_z"], part["aligned_residual"]
            aligned.digest[ids] = part["aligned_digest"]
        if gradcam is not None:
            gradcam[ids] = part["gradcam"]
    if (seen != 1).any():
        bad = int(np.flatnonzero(seen != 1)[0])
        raise RunError(
            f"The Ray job analysing {run.path} returned sample {bad} {int(seen[bad])} times (every sample "
            "must come back exactly once); nothing was written and the previous analysis is intact."
        )
    return logits, latent, pixels, aligned, gradcam

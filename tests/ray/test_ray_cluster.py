"""`analyze --ray-address` on a multi-node cluster on this machine, and a worker killed mid-job.

One ``ray.cluster_utils.Cluster`` for the module: a head node with no CPUs (so no work runs
there) and two worker nodes of one CPU each, on loopback.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

import samplescope
from samplescope.engines import RayEngine
from samplescope.errors import RunError
from samplescope.pipeline.analyze import analyze_run
from samplescope.store import layout

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")
pytestmark = pytest.mark.ray

#: the digits integration with a short sleep per shard, so a worker can be killed mid-job
SLOW = str(Path(__file__).with_name("slow_digits.py"))


@pytest.fixture(scope="module")
def cluster(object_store):
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": object_store,
                                                      "include_dashboard": False})
    for _ in range(2):
        c.add_node(num_cpus=1, object_store_memory=object_store)
    c.wait_for_nodes()
    yield c
    c.shutdown()


def _same_samples_as(reference: Path, path: Path) -> None:
    """Every sample exactly once, with the embedded engine's predictions and latent vectors."""
    ref, got = samplescope.open_run(reference), samplescope.open_run(path)
    a, b = ref.samples(), got.samples()
    ids = b["sample_id"].to_numpy()
    assert len(ids) == len(a) and len(np.unique(ids)) == len(ids)
    np.testing.assert_array_equal(np.sort(ids), np.arange(len(a)))
    b = b.sort_values("sample_id")
    np.testing.assert_array_equal(b["prediction"].to_numpy(), a.sort_values("sample_id")["prediction"].to_numpy())
    np.testing.assert_allclose(np.asarray(got.latent()), np.asarray(ref.latent()), atol=1e-5)


def _fingerprint(path: Path) -> dict[str, str]:
    return {name: hashlib.sha256((path / name).read_bytes()).hexdigest()
            for name in (layout.RUN_JSON, layout.LATENT, layout.DATABASE, layout.NEIGHBOR_ROWS)}


def test_multi_node_cluster_every_sample_once(cluster, reference_run, run_copy, leftovers):
    engine = RayEngine(address=cluster.address, batch_size=128)
    summary = analyze_run(run_copy, projection="pca", seed=0, progress=False, engine=engine)
    assert summary["engine"]["nodes"] == 2 and summary["engine"]["workers"] == 2  # both worker nodes worked
    assert summary["engine"]["shards"] == 12 + 3  # 1,500 train and 297 validation samples in shards of 128
    _same_samples_as(reference_run, run_copy)
    assert leftovers(run_copy) == []
    assert not ray.is_initialized()  # the driver left the cluster, which still runs
    assert cluster.head_node.remaining_processes_alive()


class _KillAWorker(threading.Thread):
    """SIGKILL one of this test's Ray Data worker processes once ``after`` shards are on disk."""

    def __init__(self, run: Path, leftovers, after: int = 2, every: bool = False) -> None:
        super().__init__(daemon=True)
        self.path, self.leftovers, self.after, self.every = run, leftovers, after, every
        self.killed: int | None = None
        self.shards_then = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            done = [p for f in self.leftovers(self.path) for p in f.glob("*.parquet")]
            if len(done) < self.after:
                continue
            for proc in psutil.Process().children(recursive=True):
                try:
                    if "MapWorker" in " ".join(proc.cmdline()):
                        proc.send_signal(signal.SIGKILL)
                        self.killed, self.shards_then = proc.pid, len(done)
                        if not self.every:
                            return
                except psutil.Error:
                    continue
            if self.killed is not None:
                return


def _analyze_while_killing(path: Path, address: str, leftovers, retries: int, every: bool = False):
    killer = _KillAWorker(path, leftovers, every=every)
    killer.start()
    engine = RayEngine(address=address, batch_size=64, max_retries=retries)
    try:
        return analyze_run(path, projection="pca", seed=0, progress=False, integration=SLOW, engine=engine), killer
    finally:
        killer.stop.set()
        killer.join()


def test_a_killed_worker_is_retried_and_every_sample_comes_back_once(cluster, reference_run, run_copy, leftovers):
    summary, killer = _analyze_while_killing(run_copy, cluster.address, leftovers, retries=3)
    assert killer.killed is not None, "no worker was killed: the job ended first"
    assert killer.shards_then < summary["engine"]["shards"] == 29  # killed mid-job
    _same_samples_as(reference_run, run_copy)
    assert leftovers(run_copy) == []


def test_a_killed_worker_without_retries_fails_and_leaves_the_previous_analysis(cluster, run_copy, leftovers):
    before = _fingerprint(run_copy)
    with pytest.raises(RunError, match=r"The Ray job analysing .* failed .* the previous analysis is intact"):
        # every worker at once: one killed between two shards restarts with no shard lost and the job would
        # rightly complete, so kill them all while the job runs (at least one is mid-shard)
        _analyze_while_killing(run_copy, cluster.address, leftovers, retries=0, every=True)
    assert _fingerprint(run_copy) == before
    assert leftovers(run_copy) == []
    assert samplescope.open_run(run_copy).analyzed

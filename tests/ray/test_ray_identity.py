"""`analyze --engine ray` on a local Ray instance gives what the embedded engine gives."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import samplescope
from samplescope.engines import RayEngine
from samplescope.pipeline.analyze import analyze_run
from samplescope.store import layout

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


def _columns(path):
    run = samplescope.open_run(path)
    df = run.samples().sort_values("sample_id").reset_index(drop=True)
    return run, df


def test_ray_engine_equals_the_embedded_engine(reference_run, run_copy, leftovers, object_store):
    assert not ray.is_initialized()
    # small shards: 8 of them, over 2 actors, so the pass really is spread and put back together;
    # every row stage after it on Ray too (stage_min_rows=0), however small
    engine = RayEngine(batch_size=256, num_cpus=2, object_store_memory=object_store, stage_min_rows=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = analyze_run(run_copy, projection="pca", seed=0, progress=False, engine=engine)
    # none of the remote arguments Ray 2.60 deprecates (ray_remote_args such as max_restarts)
    assert not [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)
                and ("ray_remote_args" in str(w.message) or "in Ray 2." in str(w.message))]
    assert not ray.is_initialized()  # the local instance was started for the job and shut down after
    assert leftovers(run_copy) == []
    assert summary["engine"]["name"] == "ray" and summary["engine"]["shards"] == 8
    stages = summary["engine"]["stages"]
    # the latent's kNN graph, and the duplicate finder's over the pixel and the aligned sketch
    assert stages["kNN graph"]["calls"] == 3 and stages["kNN graph"]["rows"] == 3 * 1797
    assert not [what for what in stages if "PCA" in what]  # PCA places every row on the driver: cheaper than Ray

    ref, a = _columns(reference_run)
    got, b = _columns(run_copy)
    assert ref.info["analysis"]["engine"] == {"name": "embedded"}
    np.testing.assert_array_equal(b["sample_id"], np.arange(len(a)))  # every sample, once
    np.testing.assert_array_equal(b["prediction"], a["prediction"])
    np.testing.assert_array_equal(b["correct"], a["correct"])
    np.testing.assert_allclose(b["loss"], a["loss"], atol=1e-5)
    np.testing.assert_allclose(b[[f"prob_{k}" for k in range(10)]], a[[f"prob_{k}" for k in range(10)]], atol=1e-5)
    np.testing.assert_allclose(np.asarray(got.latent()), np.asarray(ref.latent()), atol=1e-5)
    np.testing.assert_allclose(b[["map_x", "map_y"]], a[["map_x", "map_y"]], atol=1e-4)
    np.testing.assert_array_equal(b["cluster"], a["cluster"])
    np.testing.assert_array_equal(
        np.load(run_copy / layout.NEIGHBOR_ROWS), np.load(reference_run / layout.NEIGHBOR_ROWS)
    )
    ref_insights = [(i.kind, i.text, round(i.severity, 6), list(i.sample_ids)) for i in ref.insights()]
    got_insights = [(i.kind, i.text, round(i.severity, 6), list(i.sample_ids)) for i in got.insights()]
    assert got_insights == ref_insights and len(ref_insights) > 0


def test_row_stages_on_ray_equal_the_driver(reference_run, object_store):
    """The approximate (IVF) kNN graph and a fitted map's placement of the other rows, on Ray
    Data tasks in chunks, equal what the driver computes in one call."""
    from samplescope.analysis.neighbors import NeighborIndex
    from samplescope.analysis.projection import Projection
    from samplescope.engines.ray_engine import ray_session

    x = np.asarray(samplescope.open_run(reference_run).latent())

    def graph_and_map():
        index = NeighborIndex(exact_max=0, random_state=0).fit(x)  # IVF forced
        proj = Projection(method="tsne", fit_size=600, n_epochs=30, random_state=0, n_jobs=1)
        return index, proj.fit_transform(x, neighbors=index)

    ref_index, ref_map = graph_and_map()
    engine = RayEngine(num_cpus=2, object_store_memory=object_store, stage_min_rows=0)
    with engine.stages(), ray_session(engine):
        index, xy = graph_and_map()
    assert not ray.is_initialized()
    assert ref_index.kind_ == index.kind_ == "ivf" and index.nprobe_ == ref_index.nprobe_
    np.testing.assert_array_equal(index.graph_rows_, ref_index.graph_rows_)
    np.testing.assert_allclose(index.graph_dist_, ref_index.graph_dist_, atol=1e-6)
    np.testing.assert_array_equal(xy, ref_map)  # 1,197 rows placed on Ray, the rounds here
    assert engine.stats_["stages"]["map placement"]["rows"] == len(x) - 600
    assert engine.stats_["stages"]["kNN graph"]["calls"] == 1

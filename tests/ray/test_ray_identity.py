"""`analyze --engine ray` on a local Ray instance gives what the embedded engine gives."""

from __future__ import annotations

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
    # small shards: 8 of them, over 2 actors, so the pass really is spread and put back together
    engine = RayEngine(batch_size=256, num_cpus=2, object_store_memory=object_store)
    summary = analyze_run(run_copy, projection="pca", seed=0, progress=False, engine=engine)
    assert not ray.is_initialized()  # the local instance was started for the job and shut down after
    assert leftovers(run_copy) == []
    assert summary["engine"]["name"] == "ray" and summary["engine"]["shards"] == 8

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

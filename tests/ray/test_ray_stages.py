"""The pieces of the Ray engine's row stages and retries that need no Ray instance."""

from __future__ import annotations

import numpy as np
import pytest

from samplescope.engines import stages

pytest.importorskip("ray")
pytestmark = pytest.mark.ray


def test_chunks_cover_every_row_once_in_multiples_of_the_batch():
    from samplescope.engines.row_stage import chunk_plan

    for n, align, workers in [(1797, 1, 2), (70_000, 8192, 2), (100_000, 65_536, 16), (5, 8192, 4)]:
        plan = chunk_plan(n, align, workers)
        covered = np.concatenate([np.arange(a, b) for a, b in plan])
        np.testing.assert_array_equal(covered, np.arange(n))
        assert all((b - a) % align == 0 for a, b in plan[:-1])  # the driver's batches, chunk for chunk


def test_map_rows_is_one_call_here_and_goes_to_the_mapper_inside_row_stages():
    x = np.arange(20.0).reshape(10, 2)
    calls = []

    def fn(start, stop, chunk):
        calls.append((start, stop))
        return (chunk.sum(axis=1), np.arange(start, stop))

    total, rows = stages.map_rows(fn, 10, arrays=(x,))
    assert calls == [(0, 10)]
    np.testing.assert_array_equal(total, x.sum(axis=1))

    def in_two(fn, n, arrays, align, what):  # a mapper that runs the rows in two chunks, in order
        parts = [fn(a, b, *[v[a:b] for v in arrays]) for a, b in ((0, 4), (4, n))]
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))

    calls.clear()
    with stages.row_stages(in_two):
        got = stages.map_rows(fn, 10, arrays=(x,), align=4, what="test")
    assert calls == [(0, 4), (4, 10)] and stages.active() is None
    np.testing.assert_array_equal(got[0], total)
    np.testing.assert_array_equal(got[1], rows)
    with stages.row_stages(lambda *a: None):  # a mapper that declines: computed here
        calls.clear()
        stages.map_rows(fn, 10, arrays=(x,))
    assert calls == [(0, 10)]


def test_each_start_of_a_shard_is_counted(tmp_path):
    from samplescope.engines.shards import record_attempt

    assert [record_attempt(tmp_path, 4096) for _ in range(3)] == [1, 2, 3]
    assert record_attempt(tmp_path, 0) == 1  # per shard

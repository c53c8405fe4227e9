"""prefetch: same items in the same order, bounded look-ahead, errors and early stops passed through."""

from __future__ import annotations

import threading
import time

import pytest

from samplescope.pipeline.prefetch import prefetch


def test_same_items_in_order():
    assert list(prefetch(iter(range(1000)), depth=3)) == list(range(1000))
    assert list(prefetch([], depth=1)) == []


def test_produces_at_most_depth_ahead():
    produced = []

    def items():
        for i in range(100):
            produced.append(i)
            yield i

    it = prefetch(items(), depth=2)
    assert next(it) == 0
    deadline = time.monotonic() + 2
    while len(produced) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    # one consumed, two queued, at most one more held by the producer waiting for a slot
    assert len(produced) <= 4
    it.close()


def test_runs_in_another_thread():
    seen = []

    def items():
        for i in range(3):
            seen.append(threading.current_thread().name)
            yield i

    list(prefetch(items()))
    assert set(seen) == {"samplescope-prefetch"}


def test_producer_errors_reach_the_consumer_at_their_place():
    def items():
        yield 1
        yield 2
        raise KeyError("sample 7")

    got = []
    with pytest.raises(KeyError, match="sample 7"):
        for x in prefetch(items()):
            got.append(x)  # noqa: PERF402 - the items before the error are what is checked
    assert got == [1, 2]


def test_stopping_early_stops_the_producer():
    def items():
        i = 0
        while True:
            yield i
            i += 1

    before = threading.active_count()
    for x in prefetch(items(), depth=2):
        if x == 5:
            break
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth=0"):
        list(prefetch([1], depth=0))

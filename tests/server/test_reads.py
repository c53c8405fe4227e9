"""The read lane (samplescope/server/reads.py) and the thread settings the app applies.

Mechanism, not wall-clock: which thread answered, how many trips a request made, what the
event loop's thread pool and the interpreter's switch interval were while the app ran."""

from __future__ import annotations

import asyncio
import sys
import threading

import anyio.to_thread
import fastapi.dependencies.utils
import fastapi.routing
import pytest
from starlette import concurrency

from samplescope.errors import ParameterError
from samplescope.server import Settings, create_app
from samplescope.server.reads import ReadLane
from samplescope.server.state import ServerState

from .conftest import LOCAL
from .conftest import test_client_class as client_class


def test_a_sample_is_answered_on_one_read_lane_thread(app, monkeypatch):
    threads: list[str] = []
    record = ServerState.sample_record

    def spy(self, sample_id):
        threads.append(threading.current_thread().name)
        return record(self, sample_id)

    hops: list[str] = []
    original = concurrency.run_in_threadpool

    async def counted(func, *args, **kwargs):
        hops.append(getattr(func, "__name__", repr(func)))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(ServerState, "sample_record", spy)
    for module in (fastapi.routing, fastapi.dependencies.utils):
        monkeypatch.setattr(module, "run_in_threadpool", counted)
    client = client_class()(app, base_url=LOCAL)
    body = client.get("/api/samples/3").json()
    assert body["sample_id"] == 3 and body["row"]["sample_id"] == 3
    assert len(threads) == 1 and threads[0].startswith("samplescope-read")
    assert hops == []  # no trip through the shared pool (its dependency, handler, answer check)
    # an unknown id is still the 404 with its one-line error, raised on the read thread
    missing = client.get("/api/samples/999999")
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]


def test_the_app_sets_the_shared_pool_and_switch_interval_while_it_runs(tiny_run):
    before = sys.getswitchinterval()
    app = create_app(tiny_run, Settings(prewarm=False, pool_threads=3, switch_interval=0.002))
    with client_class()(app, base_url=LOCAL) as client:
        assert sys.getswitchinterval() == pytest.approx(0.002)
        limiter = client.portal.call(anyio.to_thread.current_default_thread_limiter)
        assert limiter.total_tokens == 3
        assert client.get("/api/samples/0").status_code == 200
    assert sys.getswitchinterval() == pytest.approx(before)


def test_a_read_lane_runs_in_its_threads_and_passes_errors_on():
    lane = ReadLane(2)

    def fail() -> None:
        raise KeyError("sample 7")

    try:
        name = asyncio.run(lane.run(lambda: threading.current_thread().name))
        assert name.startswith("samplescope-read")
        with pytest.raises(KeyError, match="sample 7"):
            asyncio.run(lane.run(fail))
        lane.close()  # an app's shutdown; started again, it reads again
        assert asyncio.run(lane.run(lambda: 7)) == 7
    finally:
        lane.close()
    inline = ReadLane(0)  # on the event loop: the caller's thread
    assert (
        asyncio.run(inline.run(lambda: threading.current_thread().name))
        == threading.current_thread().name
    )
    with pytest.raises(ValueError, match="0 threads"):
        ReadLane(-1)


@pytest.mark.parametrize(
    ("field", "value"),
    [("pool_threads", 0), ("read_threads", -1), ("switch_interval", 0.0), ("heavy_nice", 20),
     ("heavy_workers", 0), ("heavy_timeout", "30"), ("map_full_max", True), ("heatmap_cache_size", 1.5)],
)
def test_a_setting_out_of_range_is_a_one_line_error(field, value):
    with pytest.raises(ParameterError) as err:
        Settings(**{field: value})
    message = str(err.value)
    assert f"Settings.{field}={value!r}" in message and "use " in message and "\n" not in message


def test_the_edges_of_each_range_are_allowed():
    Settings(read_threads=0, pool_threads=1, heavy_nice=0, heavy_queue=0, reload_interval=0, heavy_timeout=0.2)

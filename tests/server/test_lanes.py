"""Heavy work in worker processes (samplescope/server/heavy.py): where it runs, what its errors
become, and that a slow or dying job is stopped without holding up the cheap routes.

Mechanism, not wall-clock: each test names the process a job ran in, or checks that cheap
requests were answered while a heavy job was still running."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from samplescope.errors import BusyError, ParameterError
from samplescope.server import Settings, create_app, heavy
from samplescope.server.heavy import ProcessLane
from samplescope.server.state import Lanes

from .conftest import LOCAL
from .conftest import test_client_class as client_class

# --- jobs (module level: a worker process imports them by name) -------------------------------


def worker_pid(state) -> tuple[int, str]:
    """The worker's process id and the run its own state opened."""
    return os.getpid(), state.run.name


def refuse(state, value: int) -> None:
    raise ParameterError(f"value {value} is refused in the worker")


def spin(state, seconds: float) -> int:
    """Pure Python for ``seconds``: in a thread of the server it would hold the interpreter lock."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def die(state) -> None:
    os._exit(3)


def libraries(state) -> dict[str, object]:
    """Whether torch is loaded in the worker, and its thread count there if so."""
    torch = sys.modules.get("torch")
    return {"torch": torch is not None, "threads": None if torch is None else torch.get_num_threads()}


def holds_map(state) -> tuple[int, bool]:
    """The worker's process id, and whether its state holds the map's index (read by the
    early start's warm_viewports, in a thread of the worker)."""
    state.held_map._filled.wait(30)
    return os.getpid(), state.held_map._index is not None


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def process_app(tiny_run):
    return create_app(tiny_run, Settings(prewarm=False, heavy_timeout=60))


def test_settings_choose_processes_by_default_and_threads_on_request():
    lanes = Lanes.of(Settings())
    assert isinstance(lanes.heatmap, ProcessLane) and isinstance(lanes.compute, ProcessLane)
    threads = Lanes.of(Settings(heavy_processes=False))
    assert threads.heatmap.kind == threads.compute.kind == "thread"


def test_heavy_routes_run_in_a_worker_process_and_answer_as_in_process(process_app, tiny_run):
    state = process_app.state.samplescope.current()
    pid, name = asyncio.run(state.compute_lane.run(worker_pid, state))
    assert pid != os.getpid() and pid in state.compute_lane.pids
    assert name == tiny_run.name
    assert state.compute_lane.kind == "process" and os.getpid() not in state.heatmap_lane.pids

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(process_app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL, timeout=60) as c:
            agg = await c.get("/api/aggregate", params={"x": "loss", "by": "label", "bins": 5})
            hm = await c.get("/api/samples/2/heatmap.json", params={"target": 1})
            return agg, hm

    agg, hm = asyncio.run(scenario())
    assert agg.status_code == 200 and hm.status_code == 200, (agg.text, hm.text)
    # the worker's answers are the in-process ones
    threads = create_app(tiny_run, Settings(prewarm=False, heavy_processes=False))
    expected = threads.state.samplescope.current().aggregate("loss", "loss", "label", None, 5)
    got = agg.json()["data"]
    assert len(got) == len(expected)
    for column in ("count", "mean", "x_lo"):
        values = [np.nan if r[column] is None else r[column] for r in got]
        assert np.allclose(values, expected[column].to_numpy(float), atol=1e-5, equal_nan=True)
    reference = np.asarray(tiny_run.heatmap(2, 1, method="gradcam"), float)
    assert np.allclose(np.asarray(hm.json()["values"]), np.nan_to_num(reference), atol=1e-5)
    assert state.heatmap_lane.pids and not state.heatmap_lane.pids & state.compute_lane.pids


def test_an_error_in_the_worker_reaches_the_request_as_in_process(process_app):
    state = process_app.state.samplescope.current()
    with pytest.raises(ParameterError, match="value 7 is refused in the worker"):
        asyncio.run(state.compute_lane.run(refuse, state, 7))
    # a route whose check fails in the worker answers the same 422 (bad id set for similars)
    with _client(process_app) as c:
        r = c.get("/api/similar", params={"ids": "999999"})
    assert r.status_code == 404 and r.json()["error"] == "NotFoundError"


def test_a_slow_job_is_stopped_and_cheap_routes_answer_while_it_runs(tiny_run, process_app):
    app = create_app(tiny_run, Settings(prewarm=False, heavy_timeout=3, heavy_queue=0))
    state = app.state.samplescope.current()
    lane = state.compute_lane
    # the worker (shared by lanes of one name) started and holding the run, with time to spare
    warm = process_app.state.samplescope.current().compute_lane
    first_pid, _ = asyncio.run(warm.run(worker_pid, state))

    async def scenario() -> None:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL, timeout=60) as c:
            heavy = asyncio.ensure_future(lane.run(spin, state, 30))
            await asyncio.sleep(0.2)
            cheap = await asyncio.gather(*(c.get(f"/api/samples/{i}") for i in range(20)))
            assert not heavy.done()  # answered while the heavy job still ran
            assert [r.status_code for r in cheap] == [200] * 20
            busy = await c.get("/api/aggregate", params={"x": "loss"})  # the lane is full
            assert busy.status_code == 503 and busy.json()["error"] == "BusyError"
            with pytest.raises(BusyError, match="heavy_timeout"):
                await heavy

    asyncio.run(scenario())
    deadline = time.monotonic() + 10
    while _alive(first_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(first_pid)  # the slow job's process was killed, not left spinning
    assert lane.restarts == 1
    second_pid, _ = asyncio.run(warm.run(worker_pid, state))  # a new worker answers
    assert second_pid != first_pid


def test_a_worker_still_starting_is_not_killed_at_the_timeout(tiny_run, process_app):
    """A fresh worker's first job opens the run (and, for a heatmap, loads torch and the model):
    on a loaded machine that took longer than the timeout, and killing it each time meant no
    worker ever got warm. The request is a 503; the worker finishes and answers the next job."""
    state = process_app.state.samplescope.current()
    cold = ProcessLane("cold-start", workers=1, queue=0, timeout=0.5)
    patient = ProcessLane("cold-start", workers=1, queue=0, timeout=120)  # the same worker
    try:
        first = heavy._worker(cold._key(0)).pid  # started, no job answered yet (cold)
        with pytest.raises(BusyError, match="heavy_timeout"):
            asyncio.run(cold.run(spin, state, 1.5))
        pid, name = asyncio.run(patient.run(worker_pid, state))
        assert (pid, name) == (first, state.run.name) and cold.restarts == 0
        # warm now: a job past the timeout stops it, as before (once the lane has counted the
        # first job done: its thread notices the answer a moment after the worker gives it)
        settle = time.monotonic() + 10
        while cold.pending and time.monotonic() < settle:
            time.sleep(0.02)
        with pytest.raises(BusyError, match="heavy_timeout"):
            asyncio.run(cold.run(spin, state, 30))
        deadline = time.monotonic() + 10
        while _alive(first) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(first) and cold.restarts == 1
    finally:
        cold.close()


def test_a_worker_that_dies_is_a_503_and_the_next_job_gets_a_new_one(process_app):
    state = process_app.state.samplescope.current()
    lane = state.compute_lane
    before, _ = asyncio.run(lane.run(worker_pid, state))
    with pytest.raises(BusyError, match="worker process ended"):
        asyncio.run(lane.run(die, state))
    after, _ = asyncio.run(lane.run(worker_pid, state))
    assert after != before and after in lane.pids and before not in lane.pids


def test_one_worker_serves_each_run_a_state_names_in_turn(process_app, tiny_run_path, tmp_path):
    """A re-analysed or other run is a new spec: the worker closes the run it holds, opens it."""
    copy = tmp_path / "other"
    shutil.copytree(tiny_run_path, copy)
    other = create_app(copy, Settings(prewarm=False, heavy_timeout=60)).state.samplescope.current()
    state = process_app.state.samplescope.current()
    first = asyncio.run(state.compute_lane.run(worker_pid, state))
    second = asyncio.run(other.compute_lane.run(worker_pid, other))
    again = asyncio.run(state.compute_lane.run(worker_pid, state))
    assert first[0] == second[0] == again[0]  # the same process
    assert (first[1], second[1], again[1]) == (state.run.name, "other", state.run.name)


def test_a_worker_loads_torch_only_for_a_job_that_needs_it(process_app):
    """The compute lane's jobs (aggregates, similars of a set, selections) need no model, so its
    worker never loads torch (about 180 MiB); the heatmap worker loads it, one thread."""
    state = process_app.state.samplescope.current()
    with _client(process_app) as c:
        assert c.get("/api/aggregate", params={"x": "loss", "by": "label", "bins": 5}).status_code == 200
        assert c.get("/api/similar", params={"ids": "1,2,3", "k": 4}).status_code == 200
        assert c.post("/api/selection", json={"ids": [1, 2, 3]}).status_code == 200
        hm = c.get("/api/samples/2/heatmap.json", params={"target": 3, "method": "saliency"})
        assert hm.status_code == 200  # (computed: only Grad-CAM is stored by the analysis)
    assert asyncio.run(state.compute_lane.run(libraries, state)) == {"torch": False, "threads": None}
    assert asyncio.run(state.heatmap_lane.run(libraries, state)) == {"torch": True, "threads": 1}


def test_a_job_that_cannot_go_to_a_process_runs_in_a_thread(process_app):
    state = process_app.state.samplescope.current()
    assert asyncio.run(state.compute_lane.run(lambda s: os.getpid(), state)) == os.getpid()


def test_worker_processes_end_when_the_server_is_killed(tiny_run_path):
    """A worker never sees its job queue close (it holds an end itself): it watches the server."""
    code = (
        "import sys, time\n"
        "from samplescope.run import open_run\n"
        "from samplescope.server import Settings, create_app\n"
        "state = create_app(open_run(sys.argv[1]), Settings(prewarm=False)).state.samplescope.current()\n"
        "state.compute_lane.call(state.rows_of, [0])\n"
        "print(*state.compute_lane.pids, flush=True)\n"
        "time.sleep(300)\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code, str(tiny_run_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        (worker,) = map(int, server.stdout.readline().split())
        assert _alive(worker)
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
    deadline = time.monotonic() + 30
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a killed child stays a zombie until reaped; its state says so
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _client(app):
    return client_class()(app, base_url=LOCAL)


def test_serve_starts_a_large_runs_compute_worker_before_the_server_state(tiny_run):
    """``serve``'s head start: the worker is up, holding the run's map, before the server's state
    exists, and that state's lane finds it (the same process, the same opened state)."""
    import dataclasses

    from samplescope.server.state import ServerState, lane_of, start_compute_worker

    # a lane size of its own (nice 7), so no other test's worker is found
    settings = Settings(map_full_max=500, map_overview_points=300, heavy_nice=7, heavy_timeout=60)
    assert start_compute_worker(tiny_run, dataclasses.replace(settings, map_full_max=10**6)) is None  # sent whole
    assert start_compute_worker(tiny_run, dataclasses.replace(settings, heavy_processes=False)) is None
    assert start_compute_worker(tiny_run, dataclasses.replace(settings, prewarm=False)) is None
    lane = lane_of(settings, "compute")
    assert not lane.ready and not lane.pids
    started = start_compute_worker(tiny_run, settings)
    assert started is not None
    started.join(120)
    try:
        assert lane.ready and len(lane.pids) == 1
        state = ServerState(tiny_run, settings)
        pid, held = asyncio.run(state.compute_lane.run(holds_map, state))
        assert {pid} == lane.pids == state.compute_lane.pids and held
    finally:
        lane.close()

"""Hardening (issue 9): bounded requests, Host and Origin checks, honest ids, OPTIONS, the
heavy lanes, and the capped heatmap cache on disk. Each test is one finding of the issue."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd
import pytest

from samplescope.analysis.metrics import aggregate
from samplescope.errors import BusyError, ParameterError
from samplescope.server import Settings, create_app, limits
from samplescope.server.guard import allowed_host_names, host_allowed, host_name
from samplescope.server.heavy import Lane
from samplescope.store.heatmap_cache import HeatmapCache

from .conftest import LOCAL
from .conftest import test_client_class as client_class

TOO_BIG = 2**63  # one above the largest int64


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error", "detail"} and isinstance(body["detail"], str) and body["detail"]
    assert "\n" not in body["detail"]
    return body


# --- bounded requests -------------------------------------------------------------------------


def test_aggregate_blow_up_is_refused_naming_the_limit(client):
    """It answered 1.44 GB after 81-92 s on MNIST: 70,000 series of loss x 200 bins."""
    r = client.get("/api/aggregate", params={"x": "loss", "by": "loss", "bins": 200})
    body = error_of(r, 422)
    assert "MAX_GROUPS" in body["detail"] and "'loss'" in body["detail"]
    assert len(r.content) < 1000


def test_worst_allowed_aggregate_is_bounded(client, app):
    state = app.state.samplescope.current()
    by = max(state.aggregate_by_columns(), key=lambda c: state.distinct_counts[c])
    assert state.distinct_counts[by] <= limits.MAX_GROUPS
    r = client.get("/api/aggregate", params={"x": "loss", "by": by, "bins": limits.MAX_BINS})
    assert r.status_code == 200, r.text[:300]
    rows = r.json()["data"]
    assert len(rows) <= limits.MAX_GROUPS * limits.MAX_BINS
    assert len(r.content) < 200 * limits.MAX_GROUPS * limits.MAX_BINS  # ~2 MB at most


@pytest.mark.parametrize(
    ("params", "limit"),
    [
        ({"x": "loss", "bins": limits.MAX_BINS + 1}, str(limits.MAX_BINS)),
        ({"x": "sample_id", "y": "subset"}, "not a quantity"),
    ],
)
def test_aggregate_limits_are_422(client, params, limit):
    assert limit in error_of(client.get("/api/aggregate", params=params), 422)["detail"]


def test_aggregate_function_limits():
    df = pd.DataFrame(
        {"x": np.arange(100.0), "g": np.arange(100) % 7, "s": [f"v{i}" for i in range(100)]}
    )
    with pytest.raises(ParameterError, match=r"by='x' has 100 distinct values.*max_groups"):
        aggregate(df, "g", "x", by="x", max_groups=50)
    with pytest.raises(ParameterError, match=r"x='s'.*100 distinct values.*max_values"):
        aggregate(df, "s", "x", max_values=99)
    with pytest.raises(ParameterError, match=r"bins=11.*max_bins"):
        aggregate(df, "x", "x", bins=11, max_bins=10)
    assert len(aggregate(df, "x", "x", by="g", bins=10, max_groups=7)) == 70


def test_map_series_limit(client, app):
    columns = list(app.state.samplescope.current().kinds)[: limits.MAX_SERIES + 1]
    body = error_of(client.get("/api/map", params={"columns": ",".join(columns)}), 422)
    assert "MAX_SERIES" in body["detail"]
    assert client.get("/api/map", params={"columns": ",".join(columns[:8])}).status_code == 200


def test_samples_page_and_filter_limits(client):
    assert "1000" in error_of(client.get("/api/samples", params={"limit": 5000}), 422)["detail"]
    filters = [("loss__gte", "0")] * (limits.MAX_FILTERS + 1)
    assert "MAX_FILTERS" in error_of(client.get("/api/samples", params=filters), 422)["detail"]
    huge = client.get("/api/samples", params={"offset": limits.MAX_SAMPLE_ID, "limit": 1000})
    assert huge.status_code == 200 and huge.json()["data"] == []


def test_similar_set_and_k_limits(client):
    ids = ",".join(["1"] * (limits.MAX_SET_IDS + 1))
    assert "MAX_SET_IDS" in error_of(client.get("/api/similar", params={"ids": ids}), 422)["detail"]
    too_many_k = client.get("/api/similar", params={"ids": "1", "k": limits.MAX_K + 1})
    assert str(limits.MAX_K) in error_of(too_many_k, 422)["detail"]


def test_body_size_limit(client):
    ids = list(range(400_000))  # about 3.1 MB of JSON
    body = error_of(client.post("/api/selection", json={"ids": ids}), 422)
    assert "max_body_bytes" in body["detail"]

    def chunks():  # no Content-Length: the guard counts while it reads
        yield b'{"ids": ['
        for _ in range(300):
            yield b"1," * 5000
        yield b"1]}"

    streamed = client.post(
        "/api/selection", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "max_body_bytes" in error_of(streamed, 422)["detail"]
    over = client.post("/api/selection", json={"ids": [0] * (limits.MAX_IDS + 1)})
    assert str(limits.MAX_IDS) in error_of(over, 422)["detail"]


# --- sample ids: non-negative int64, strictly -------------------------------------------------


@pytest.mark.parametrize("bad", [TOO_BIG, 10**30, -1])
def test_ids_out_of_int64_are_422_on_every_route(client, bad):
    """Nine routes answered 500 (OverflowError) for an id above 2**63 - 1."""
    for path in (
        f"/api/samples/{bad}",
        f"/api/samples/{bad}/image.png",
        f"/api/samples/{bad}/heatmap.png",
        f"/api/samples/{bad}/heatmap.json",
        f"/api/samples/{bad}/similar",
        f"/api/similar?ids=1,{bad}",
        f"/api/selection?ids={bad}",
        f"/api/samples?ids={bad}",
    ):
        error_of(client.get(path), 422)
    error_of(client.post("/api/selection", json={"ids": [bad]}), 422)


def test_largest_int64_id_is_a_404_not_an_error(client):
    top = limits.MAX_SAMPLE_ID
    assert error_of(client.get(f"/api/samples/{top}"), 404)["error"] == "NotFoundError"
    assert error_of(client.get(f"/api/selection?ids={top}"), 404)["error"] == "NotFoundError"


@pytest.mark.parametrize("bad", [[False], [True], [1.5], ["1"], [None], "1,2", {"a": 1}])
def test_selection_body_takes_strict_ints_only(client, bad):
    """``{"ids": [false]}`` was read as sample 0."""
    error_of(client.post("/api/selection", json={"ids": bad}), 422)


def test_selection_body_refuses_unknown_fields(client):
    error_of(client.post("/api/selection", json={"ids": [1], "idz": [2]}), 422)


@pytest.mark.parametrize("ids", ["1,,2", "1,2,", " ,1", "1;2", "¹", "1" * 5000])
def test_malformed_id_lists_are_422(client, ids):
    error_of(client.get("/api/selection", params={"ids": ids}), 422)


# --- Host and Origin --------------------------------------------------------------------------


def test_host_names_parse():
    assert host_name("LocalHost:8765") == "localhost"
    assert host_name("[::1]:9") == "::1" and host_name("127.0.0.1") == "127.0.0.1"
    assert host_name("localhost.") == "localhost"
    assert host_name("a:b:c") is None and host_name("") is None and host_name(None) is None
    loop = allowed_host_names("127.0.0.1")
    assert host_allowed("127.0.0.2", loop, wildcard=False)  # 127/8 is loopback
    assert not host_allowed("evil.example", loop, wildcard=False)
    assert not host_allowed("192.168.1.5", loop, wildcard=False)
    assert host_allowed("192.168.1.5", allowed_host_names("0.0.0.0"), wildcard=True)
    assert not host_allowed("evil.example", allowed_host_names("0.0.0.0"), wildcard=True)
    assert host_allowed("box.lan", allowed_host_names("127.0.0.1", ["box.lan"]), wildcard=False)


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8765", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:65535"]
)
def test_loopback_hosts_are_served(client, host):
    assert client.get("/api/run", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "localhost.evil", "", "[::2]"],
)
def test_other_hosts_are_403(client, host):
    for path in ("/api/run", "/", "/static/js/app.js", "/openapi.json", "/api/nothing"):
        body = error_of(client.get(path, headers={"Host": host}), 403)
        assert body["error"] == "RequestRefusedError" and "localhost" in body["detail"]


def test_the_host_given_is_served(tiny_run):
    app = create_app(tiny_run, Settings(prewarm=False, host="box.lan"))
    with client_class()(app, base_url="http://box.lan:8765") as c:
        assert c.get("/api/run").status_code == 200
        assert c.get("/api/run", headers={"Host": "other.lan"}).status_code == 403


def _raw_get(base: str, host: str) -> tuple[int, bytes]:
    """A request with exactly the headers curl sends (``curl -H 'Host: ...' URL``)."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(
            f"GET /api/run HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8.5.0\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_real_server_refuses_a_foreign_host(live_server):
    """DNS rebinding: `curl -H 'Host: evil.example' http://127.0.0.1:PORT/api/run` gave run.json."""
    status, body = _raw_get(live_server, "evil.example")
    assert status == 403
    answer = json.loads(body)
    assert answer["error"] == "RequestRefusedError" and "/runs/" not in body.decode()
    status, body = _raw_get(live_server, f"localhost:{urlsplit(live_server).port}")
    assert status == 200 and json.loads(body)["name"]
    r = httpx.post(
        live_server + "/api/selection", json={"ids": [1]}, headers={"Origin": "http://evil.example"}
    )
    assert error_of(r, 403)["error"] == "RequestRefusedError"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:9999"},  # another port is another origin
        {"Origin": "null"},
        {"Origin": "file://"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_origin_writes_are_403(client, headers):
    r = client.post("/api/selection", json={"ids": [1, 2]}, headers=headers)
    assert error_of(r, 403)["error"] == "RequestRefusedError"
    for method in ("PUT", "PATCH", "DELETE"):  # write routes added later are covered too
        assert client.request(method, "/api/run", headers=headers).status_code == 403


def test_same_origin_and_plain_writes_are_served(client):
    own = {"Origin": LOCAL, "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/selection", json={"ids": [1]}, headers=own).status_code == 200
    assert client.post("/api/selection", json={"ids": [1]}).status_code == 200  # curl, scripts
    # reads with a foreign Origin are answered (no CORS header lets a page read them)
    r = client.get("/api/run", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_default_host_is_loopback():
    assert Settings().host == "127.0.0.1"


# --- OPTIONS and 405 --------------------------------------------------------------------------


def test_options_lists_every_method(client):
    """``OPTIONS /api/selection`` said ``Allow: GET`` although POST exists."""
    r = client.options("/api/selection")
    assert r.status_code == 204 and r.headers["allow"] == "GET, OPTIONS, POST"
    assert client.options("/api/samples/3/heatmap.png").headers["allow"] == "GET, OPTIONS"
    assert "HEAD" in client.options("/static/js/app.js").headers["allow"]
    error_of(client.options("/api/nothing"), 404)


def test_405_lists_every_method(client):
    body = error_of(client.put("/api/selection", json={"ids": [1]}), 405)
    assert "GET, OPTIONS, POST" in body["detail"]
    assert client.put("/api/selection", json={"ids": [1]}).headers["allow"] == "GET, OPTIONS, POST"


# --- the OpenAPI document ---------------------------------------------------------------------


def test_openapi_declares_the_error_body_for_every_error_status(client):
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["ErrorPublic"]["properties"]["detail"]["type"] == "string"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            statuses = set(op["responses"])
            takes_input = bool(op.get("parameters") or op.get("requestBody"))
            # a route that takes no input cannot answer 422
            assert {"400", "403"} | ({"422"} if takes_input else set()) <= statuses, (path, method)
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorPublic"), (path, method, status)
    sample = doc["paths"]["/api/samples/{sample_id}"]["get"]
    param = next(p for p in sample["parameters"] if p["name"] == "sample_id")
    assert param["schema"]["minimum"] == 0 and param["schema"]["maximum"] == limits.MAX_SAMPLE_ID
    assert (
        "404" in sample["responses"]
        and "503" in (doc["paths"]["/api/samples/{sample_id}/heatmap.png"]["get"]["responses"])
    )


def test_openapi_enums_are_the_runs_values(client, app):
    state = app.state.samplescope.current()
    doc = client.get("/openapi.json").json()

    def schema_of(path: str, name: str) -> dict:
        op = doc["paths"][path]["get"]
        return next(p for p in op["parameters"] if p["name"] == name)["schema"]

    assert schema_of("/api/confusion", "subset")["enum"] == ["", *state.subsets, "all"]
    targets = schema_of("/api/samples/{sample_id}/heatmap.png", "target")["enum"]
    assert set(state.classes) <= set(targets) and "0" in targets
    assert set(schema_of("/api/samples", "sort")["enum"]) == {"", *state.kinds}
    by = schema_of("/api/aggregate", "by")["enum"]
    assert "label" in by and "loss" not in by  # loss has far more than MAX_GROUPS values
    assert "loss" in schema_of("/api/aggregate", "x")["enum"]
    assert schema_of("/api/similar", "ids")["pattern"].startswith("^")


# --- heavy work in bounded lanes --------------------------------------------------------------


def test_lane_refuses_when_full_and_times_out():
    async def scenario() -> None:
        lane = Lane("test", workers=1, queue=1, timeout=0.5)
        release = threading.Event()
        first = asyncio.ensure_future(lane.run(release.wait, 5))
        second = asyncio.ensure_future(lane.run(lambda: "second"))
        await asyncio.sleep(0.05)
        assert lane.pending == 2
        with pytest.raises(BusyError, match="heavy_workers and heavy_queue"):
            await lane.run(lambda: "third")
        with pytest.raises(BusyError, match="heavy_timeout"):
            await first  # release.wait(5) runs past the 0.5 s timeout
        release.set()
        with pytest.raises(BusyError, match="heavy_timeout"):
            await second  # it waited behind the first for longer than its timeout
        deadline = time.monotonic() + 5
        while lane.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert lane.pending == 0
        assert await lane.run(lambda: 7) == 7

    asyncio.run(scenario())


def test_a_slow_aggregate_does_not_starve_cheap_routes(tiny_run, monkeypatch):
    """While aggregates fill their lane, a sample's row still answers; more aggregates are 503.
    (Lanes of threads here, so the patched method runs; test_lanes.py has the worker processes.)"""
    settings = Settings(prewarm=False, heavy_queue=0, heavy_timeout=20, heavy_processes=False)
    app = create_app(tiny_run, settings)
    state = app.state.samplescope.current()
    started, release = threading.Event(), threading.Event()
    real = state.aggregate

    def slow(*args, **kwargs):
        started.set()
        release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(state, "aggregate", slow)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL, timeout=30) as c:
            heavy = asyncio.ensure_future(c.get("/api/aggregate", params={"x": "loss"}))
            while not started.is_set():
                await asyncio.sleep(0.01)
            cheap = await asyncio.gather(*(c.get(f"/api/samples/{i}") for i in range(20)))
            assert [r.status_code for r in cheap] == [200] * 20
            busy = await c.get("/api/aggregate", params={"x": "confidence"})
            body = error_of(busy, 503)
            assert body["error"] == "BusyError" and busy.headers["retry-after"]
            release.set()
            assert (await heavy).status_code == 200

    asyncio.run(scenario())


def test_heavy_timeout_is_503(tiny_run, monkeypatch):
    app = create_app(tiny_run, Settings(prewarm=False, heavy_timeout=0.2, heavy_processes=False))
    state = app.state.samplescope.current()
    release = threading.Event()
    monkeypatch.setattr(state, "heatmap", lambda *a, **k: release.wait(10))
    with client_class()(app, base_url=LOCAL) as c:
        body = error_of(c.get("/api/samples/2/heatmap.json", params={"target": 1}), 503)
    release.set()
    assert "heavy_timeout" in body["detail"]


# --- the heatmap cache on disk ----------------------------------------------------------------


def test_heatmap_cache_is_capped_and_evicts_the_least_recently_used(tmp_path):
    value = np.zeros((28, 28), np.float32)
    cache = HeatmapCache(tmp_path / "heatmaps", max_bytes=20_000)
    cache.put("gradcam", 0, 0, value)
    size = cache.path("gradcam", 0, 0).stat().st_size
    for i in range(1, 5):
        cache.put("gradcam", i, 0, value)
    old = time.time() - 100
    for i in range(5):  # distinct times, oldest first: 0, 1, 2, 3, 4
        os.utime(cache.path("gradcam", i, 0), (old + i, old + i))
    assert cache.get("gradcam", 0, 0) is not None  # a read makes 0 the most recent
    for i in range(5, 40):
        cache.put("gradcam", i, 0, value)
        files, used = cache.usage()
        assert used <= 20_000, (i, files, used)
    assert cache.get("gradcam", 1, 0) is None  # evicted first
    assert cache.get("gradcam", 39, 0) is not None
    assert cache.usage()[0] <= 20_000 // size


def test_heatmap_cache_drops_damaged_and_stale_files(tmp_path):
    cache = HeatmapCache(tmp_path, max_bytes=10**6)
    cache.path("saliency", 3, 1).write_bytes(b"not a numpy file")
    assert cache.get("saliency", 3, 1) is None and not cache.path("saliency", 3, 1).exists()
    stale = tmp_path / ".abc.npy"
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = tmp_path / ".def.npy"
    fresh.write_bytes(b"x")
    assert cache.usage() == (0, 0)
    assert not stale.exists() and fresh.exists()  # a write may still be under way


def test_run_heatmaps_go_through_the_capped_cache(tiny_run_path, tmp_path, monkeypatch):
    from samplescope.run import open_run
    from samplescope.store import heatmap_cache, layout

    path = tmp_path / "run"
    shutil.copytree(tiny_run_path, path)
    monkeypatch.setattr(heatmap_cache, "DEFAULT_MAX_BYTES", 2_000)  # ~5 maps of 8x8
    monkeypatch.setattr(heatmap_cache, "_caches", {})
    run = open_run(path)
    try:
        for i in range(12):
            run.heatmap(i, 0, method="saliency")
    finally:
        run.close()
    files = list((path / layout.HEATMAP_CACHE).glob("*.npy"))
    assert 0 < len(files) < 12
    assert sum(f.stat().st_size for f in files) <= 2_000

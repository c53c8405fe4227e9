"""The server at scale, checked on the tiny run: no copy of the table, the map's overview,
viewport queries and shape selections over every sample, and a re-analysis noticed.

Each answer is compared with pandas (or matplotlib's point-in-polygon) over the same table.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.path import Path as MplPath

from samplescope.server import Settings, create_app
from samplescope.server.encoding import decode_map
from samplescope.store import RunDatabase, layout

from .conftest import LOCAL
from .conftest import test_client_class as client_class


@pytest.fixture(scope="module")
def frame(tiny_run) -> pd.DataFrame:
    return tiny_run.samples()


@pytest.fixture(scope="module")
def sampled_client(tiny_run):
    """The tiny run served as if it were large: at most 300 points in the overview."""
    settings = Settings(prewarm=False, map_full_max=500, map_overview_points=300)
    with client_class()(create_app(tiny_run, settings), base_url=LOCAL) as c:
        yield c


def _held_bytes(root: object, skip: tuple[type, ...]) -> dict[str, int]:
    """Bytes of the arrays and DataFrames reachable from ``root`` through samplescope's own
    objects, containers and cached properties (a path to each), left out: ``skip``'s types."""
    seen, found, todo = set(), {}, [("state", root)]
    while todo:
        path, obj = todo.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            found[path] = obj.nbytes
        elif isinstance(obj, pd.DataFrame | pd.Series):
            found[path] = int(obj.memory_usage(deep=True).sum()) if isinstance(obj, pd.DataFrame) else obj.nbytes
        elif isinstance(obj, dict):
            todo += [(f"{path}[{k!r}]", v) for k, v in obj.items()]
        elif isinstance(obj, list | tuple | set | frozenset):
            todo += [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
        elif type(obj).__module__.startswith("samplescope") and hasattr(obj, "__dict__"):
            todo += [(f"{path}.{k}", v) for k, v in vars(obj).items()]
    return found


def test_the_server_holds_no_copy_of_the_table(tiny_run, frame):
    """After the page's requests (rows, map, counts, aggregates, a selection), what the server's
    state holds is a small part of the table: no whole-table frame, no column but the map's."""
    from samplescope.run import Run
    from samplescope.server.rowcache import RowCache

    settings = Settings(prewarm=False, row_cache_bytes=0)  # the row cache is bounded; here it is off
    app = create_app(tiny_run, settings)
    with client_class()(app, base_url=LOCAL) as http:
        for path, params in [("/api/samples", {"limit": 50, "sort": "loss", "order": "desc"}), ("/api/map", {}),
                             ("/api/map/counts", {"column": "label"}), ("/api/aggregate", {"x": "loss"}),
                             ("/api/samples/3", {})]:  # fmt: skip
            assert http.get(path, params=params).status_code == 200, path
        assert http.post("/api/selection", json={"box": [-1e9, 1e9, -1e9, 1e9]}).json()["count"] == len(frame)
        state = app.state.samplescope.current()
        held = _held_bytes(state, skip=(Run, RowCache))
    table = int(frame.memory_usage(deep=True).sum())
    assert not [p for p, v in held.items() if v >= len(frame) * 8 and "map" not in p.lower() and "column" not in p]
    assert sum(held.values()) < table / 2, sorted(held.items(), key=lambda kv: -kv[1])[:5]


def test_a_page_with_filters_and_offset_equals_pandas(client, frame):
    cut = float(frame["loss"].quantile(0.3))
    params = {"loss__gte": str(cut), "subset": "train", "sort": "loss", "order": "desc",
              "limit": "25", "offset": "10", "prediction__not": "3"}  # fmt: skip
    body = client.get("/api/samples", params=params).json()
    want = frame[(frame["loss"] >= cut) & (frame["subset"] == "train") & (frame["prediction"] != 3)]
    want = want.sort_values(["loss", "sample_id"], ascending=[False, True], kind="stable")
    assert body["count"] == len(want)
    assert [r["sample_id"] for r in body["data"]] == want["sample_id"].iloc[10:35].tolist()


def test_viewport_returns_exactly_the_samples_in_the_rectangle(client, frame):
    x0, x1 = np.quantile(frame["map_x"], [0.2, 0.6])
    y0, y1 = np.quantile(frame["map_y"], [0.3, 0.9])
    r = client.get("/api/map/viewport", params={"x0": x0, "x1": x1, "y0": y0, "y1": y1, "color": "cluster"})
    assert r.status_code == 200, r.text
    header, arrays = decode_map(r.content)
    inside = frame[frame["map_x"].between(x0, x1) & frame["map_y"].between(y0, y1)]
    assert len(inside) > 50 and header["complete"] and header["total"] == len(inside)
    assert sorted(arrays["sample_id"].tolist()) == inside["sample_id"].tolist()
    by_id = frame.set_index("sample_id").loc[arrays["sample_id"].astype(np.int64)]
    np.testing.assert_allclose(arrays["x"], by_id["map_x"].to_numpy(np.float32))
    np.testing.assert_array_equal(arrays["label"], by_id["label"].to_numpy())
    cats = header["columns"]["cluster"]["categories"]
    assert [cats[c] for c in arrays["cluster"]] == by_id["cluster"].astype(str).tolist()


def test_viewport_with_filters_and_a_limit_says_it_is_incomplete(client, frame):
    box = {"x0": frame["map_x"].min() - 1, "x1": frame["map_x"].max() + 1,
           "y0": frame["map_y"].max() + 1, "y1": frame["map_y"].min() - 1}  # fmt: skip  (either order)
    r = client.get("/api/map/viewport", params={**box, "subset": "train", "limit": 100})
    header, arrays = decode_map(r.content)
    train = frame[frame["subset"] == "train"]
    assert header["total"] == len(train) and not header["complete"] and header["n"] == 100
    assert set(arrays["sample_id"].tolist()) <= set(train["sample_id"])
    assert len(set(arrays["sample_id"].tolist())) == 100


def test_counts_are_for_every_sample_the_filters_keep(sampled_client, frame):
    cut = float(frame["loss"].median())
    params = {"column": "label", "fcol": "loss", "fmin": cut, "subset": "validation"}
    body = sampled_client.get("/api/map/counts", params=params).json()
    keep = frame[(frame["loss"] >= cut) & (frame["subset"] == "validation")]
    want = keep["label"].value_counts()
    assert body["counts"] == [int(want.get(i, 0)) for i in range(len(body["categories"]))]
    assert body["total"] == len(keep)
    even = sampled_client.get("/api/map/counts", params={"column": "even_odd", "ccol": "label", "cval": "3"})
    assert even.json()["total"] == int((frame["label"] == 3).sum())
    assert sampled_client.get("/api/map/counts", params={"column": "loss"}).status_code == 422


def test_overview_never_sends_more_points_than_the_cap(sampled_client, frame):
    run = sampled_client.get("/api/run").json()
    assert run["map"]["sampled"] and run["count"] == len(frame)
    r = sampled_client.get("/api/map", params={"color": "cluster"})
    header, arrays = decode_map(r.content)
    assert header["sampled"] and header["total"] == len(frame)
    assert 0 < header["n"] <= 300 and header["ids"] == "sample_id"
    ids = arrays["sample_id"].astype(np.int64)
    assert len(np.unique(ids)) == len(ids)
    rows = frame.set_index("sample_id").loc[ids]
    np.testing.assert_allclose(arrays["y"], rows["map_y"].to_numpy(np.float32))
    np.testing.assert_array_equal(arrays["prediction"], rows["prediction"].to_numpy())
    # every class is drawn, and the errors are kept before the rest
    assert set(arrays["label"].tolist()) == set(frame["label"])
    wrong = frame[~frame["correct"]]
    assert rows["correct"].eq(False).mean() > len(wrong) / len(frame)
    # a column asked for later comes for the same points
    _, more = decode_map(sampled_client.get("/api/map", params={"columns": "ink"}).content)
    np.testing.assert_array_equal(more["sample_id"], arrays["sample_id"])


def _lasso(frame: pd.DataFrame) -> list[list[float]]:
    """A concave star over the middle of the map."""
    cx, cy = frame["map_x"].median(), frame["map_y"].median()
    rx, ry = frame["map_x"].std(), frame["map_y"].std()
    angles = np.linspace(0, 2 * np.pi, 14, endpoint=False)
    radius = np.where(np.arange(14) % 2 == 0, 1.2, 0.45)
    return [[float(cx + rx * r * np.cos(a)), float(cy + ry * r * np.sin(a))] for a, r in zip(angles, radius)]


@pytest.mark.parametrize("served", ["client", "sampled_client"])
def test_lasso_selection_equals_point_in_polygon_over_every_sample(served, request, frame):
    http = request.getfixturevalue(served)
    polygon = _lasso(frame)
    body = http.post("/api/selection", json={"polygon": polygon}).json()
    xy = frame[["map_x", "map_y"]].to_numpy(np.float64)
    inside = frame[MplPath(np.asarray(polygon)).contains_points(xy)]
    assert body["count"] == len(inside) > 100
    mix = {c["class_index"]: (c["count"], c["errors"]) for c in body["class_mix"]}
    want = inside.groupby("label").agg(n=("sample_id", "size"), e=("correct", lambda s: int((~s).sum())))
    assert mix == {int(k): (int(v.n), int(v.e)) for k, v in want.iterrows()}
    assert body["accuracy"] == pytest.approx(inside["correct"].mean())
    top = inside.sort_values(["loss", "sample_id"], ascending=[False, True])["sample_id"].head(60)
    assert body["examples"] == top.tolist()


def test_box_selection_with_the_maps_filters(client, frame):
    x0, x1 = np.quantile(frame["map_x"], [0.1, 0.7])
    y0, y1 = np.quantile(frame["map_y"], [0.1, 0.8])
    filters = {"subset": "train", "ccol": "even_odd", "cval": "even"}
    body = client.post("/api/selection", json={"box": [x1, x0, y0, y1], "filters": filters}).json()
    keep = frame[frame["map_x"].between(x0, x1) & frame["map_y"].between(y0, y1)
                 & (frame["subset"] == "train") & (frame["even_odd"] == "even")]  # fmt: skip
    assert body["count"] == len(keep) > 20 and body["subsets"] == {"train": len(keep)}


@pytest.mark.parametrize(
    "body",
    [
        {"polygon": [[0, 0], [1, 1]]},
        {"box": [0, 1, 2]},
        {"box": [0, 1, 0, 1], "filters": {"subset": "nope"}},
        {"box": [0, 1, 0, 1], "filters": {"fcol": "subset", "fmin": 1}},
        {"ids": [1], "box": [0, 1, 0, 1]},
    ],
)
def test_bad_shapes_are_422(client, body):
    r = client.post("/api/selection", json=body)
    assert r.status_code == 422 and r.json()["detail"], r.text


def test_a_reanalysed_run_is_served_anew(tiny_run_path: Path, tmp_path: Path):
    served = tmp_path / "served"
    shutil.copytree(tiny_run_path, served)
    settings = Settings(run_path=served, prewarm=False, reload_interval=0)
    with client_class()(create_app(served, settings), base_url=LOCAL) as http:
        before = http.get("/api/run").json()
        assert http.get("/api/insights").json()["count"] > 0
        # another analysed copy, with its own analysis and insights, renamed into place the
        # way `samplescope analyze` swaps a run
        fresh = tmp_path / "fresh"
        shutil.copytree(tiny_run_path, fresh)
        info = json.loads((fresh / layout.RUN_JSON).read_text())
        info["analysis"]["marker"] = "second analysis"
        (fresh / layout.RUN_JSON).write_text(json.dumps(info))
        with RunDatabase(fresh / layout.DATABASE, writable=True) as db:
            db.write_insights([{"kind": "outlier", "severity": 0.9, "title": "planted",
                                "text": "one planted card", "sample_ids": [1, 2, 3]}])  # fmt: skip
        os.rename(served, tmp_path / "old")
        os.rename(fresh, served)
        after = http.get("/api/run").json()
        assert after["info"]["analysis"].get("marker") == "second analysis"
        assert "marker" not in before["info"]["analysis"]
        cards = http.get("/api/insights").json()
        assert "data" in cards, cards
        assert [c["title"] for c in cards["data"]] == ["planted"]
        assert http.get("/api/samples", params={"limit": 1}).json()["count"] == before["count"]


def _viewport(http, frame: pd.DataFrame, **params):
    x0, x1 = np.quantile(frame["map_x"], [0.1, 0.7])
    y0, y1 = np.quantile(frame["map_y"], [0.2, 0.8])
    r = http.get("/api/map/viewport", params={"x0": x0, "x1": x1, "y0": y0, "y1": y1, **params})
    assert r.status_code == 200, r.text
    inside = frame[frame["map_x"].between(x0, x1) & frame["map_y"].between(y0, y1)]
    return (*decode_map(r.content), inside)


@pytest.mark.parametrize("subset", [None, "validation"])
def test_a_large_runs_viewport_from_memory_equals_pandas(sampled_client, frame, subset):
    """A sampled run answers boxes (no filter, or a subset) from its map index: the same
    samples and values as the table holds."""
    header, arrays, inside = _viewport(sampled_client, frame, color="cluster", **({"subset": subset} if subset else {}))
    if subset:
        inside = inside[inside["subset"] == subset]
    assert header["complete"] and header["total"] == len(inside) == header["n"]
    assert arrays["sample_id"].tolist() == inside["sample_id"].tolist()  # in sample_id order
    rows = frame.set_index("sample_id").loc[arrays["sample_id"].astype(np.int64)]
    np.testing.assert_array_equal(arrays["x"], rows["map_x"].to_numpy(np.float32))
    np.testing.assert_array_equal(arrays["y"], rows["map_y"].to_numpy(np.float32))
    np.testing.assert_array_equal(arrays["label"], rows["label"].to_numpy())
    np.testing.assert_array_equal(arrays["prediction"], rows["prediction"].to_numpy())
    np.testing.assert_allclose(arrays["loss"], rows["loss"].to_numpy(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(arrays["correct"].astype(bool), rows["correct"].to_numpy())
    for name in ("subset", "cluster"):
        cats = header["columns"][name]["categories"]
        assert [cats[c] for c in arrays[name]] == rows[name].astype(str).tolist()


def test_a_large_runs_viewport_limit_and_other_filters(sampled_client, frame):
    header, arrays, inside = _viewport(sampled_client, frame, limit=40)
    assert header["total"] == len(inside) > 40 and not header["complete"] and header["n"] == 40
    ids = arrays["sample_id"].tolist()
    assert ids == sorted(set(ids)) and set(ids) <= set(inside["sample_id"])
    again = _viewport(sampled_client, frame, limit=40)[1]
    np.testing.assert_array_equal(again["sample_id"], arrays["sample_id"])  # seeded: the same pick
    # a filter other than a subset is answered by DuckDB, with the same totals
    cut = float(frame["loss"].median())
    header, arrays, inside = _viewport(sampled_client, frame, fcol="loss", fmin=cut)
    keep = inside[inside["loss"] >= cut]
    assert header["complete"] and arrays["sample_id"].tolist() == keep["sample_id"].tolist()


def test_the_viewport_index_and_duckdb_agree_in_process(tiny_run, frame):
    """The same boxes through ServerState: the index answers when sampled, DuckDB when not."""
    from samplescope.server.state import ServerState

    base = {"prewarm": False, "heavy_processes": False}
    held = ServerState(tiny_run, Settings(**base, map_full_max=500, map_overview_points=300))
    plain = ServerState(tiny_run, Settings(**base))
    try:
        held.warm_viewports(wait=True)
        assert held.held_map._index is not None and plain.held_map._index is None
        rng = np.random.default_rng(2)
        lo = frame[["map_x", "map_y"]].min().to_numpy()
        hi = frame[["map_x", "map_y"]].max().to_numpy()
        for _ in range(10):
            (x0, x1), (y0, y1) = (rng.uniform(lo[i], hi[i], 2) for i in range(2))
            answers = [decode_map(s.viewport_payload((x0, x1, y0, y1), [], "label", [], 10_000)) for s in (held, plain)]
            (h1, a1), (h2, a2) = answers
            assert h1["total"] == h2["total"]
            np.testing.assert_array_equal(a1["sample_id"], a2["sample_id"])
            np.testing.assert_array_equal(a1["loss"], a2["loss"])
        assert plain.held_map._index is None  # never built for a run sent whole
        # not yet held: the caller is told to ask DuckDB, and a thread reads what is missing
        assert not held.held_map.serves(["label", "cluster"])
        deadline = time.monotonic() + 60  # the read runs in a thread: slow on a loaded machine
        while not held.held_map.serves(["label", "cluster"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "cluster" in held.held_map._columns
        # with the index held, a caller may wait for a column's read instead (one call, no polling)
        other = next(c for c in held.columns if c not in held.held_map._columns and c not in ("map_x", "map_y"))
        assert held.held_map.serves(["label", other], wait=60) and other in held.held_map._columns
        fresh = ServerState(tiny_run, Settings(**base, map_full_max=500, map_overview_points=300))
        try:  # no index held and none saved (this run was analysed small): no wait, DuckDB answers
            assert not fresh.held_map.serves(["label"], wait=60)
            assert fresh.held_map._filled.wait(60)  # its read ends before the run is closed
        finally:
            fresh.heatmap_lane.close()
            fresh.compute_lane.close()
    finally:
        for s in (held, plain):
            s.heatmap_lane.close()
            s.compute_lane.close()

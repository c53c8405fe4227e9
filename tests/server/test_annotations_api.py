"""The tag and saved-selection routes: writes against the Python API and pandas, concurrency,
the cross-origin refusal, exports read back, and an untrusted run that can still be tagged."""

from __future__ import annotations

import io
import json
import shutil
import threading

import numpy as np
import pandas as pd
import pytest

from samplescope.run import open_run
from samplescope.server import Settings, create_app

from .conftest import LOCAL, untrusted_copy
from .conftest import test_client_class as client_class


@pytest.fixture(scope="module")
def run_path(tiny_run_path, tmp_path_factory):
    """A copy of the tiny run of its own: these tests write tags into it."""
    path = tmp_path_factory.mktemp("annotations") / "tagged"
    shutil.copytree(tiny_run_path, path)
    return path


@pytest.fixture(scope="module")
def run(run_path):
    r = open_run(run_path)
    yield r
    r.close()


@pytest.fixture(scope="module")
def api(run):
    with client_class()(create_app(run, Settings(prewarm=False)), base_url=LOCAL) as c:
        yield c


@pytest.fixture(scope="module")
def table(run) -> pd.DataFrame:
    return run.samples(columns=["subset", "label", "map_x", "map_y"])


def ok(response, status: int = 200):
    assert response.status_code == status, response.text
    return response.json()


def test_tag_untag_rename_delete_agree_with_the_python_api(api, run):
    assert ok(api.post("/api/tags", json={"name": "relabel:7", "samples": {"ids": [5, 3, 3, 9]}})) == {
        "name": "relabel:7", "count": 3}
    assert ok(api.post("/api/tags", json={"name": "relabel:7", "samples": {"ids": [9, 11]}}))["count"] == 4
    assert run.tagged("relabel:7").tolist() == [3, 5, 9, 11]
    listed = ok(api.get("/api/tags"))
    assert {"name": "relabel:7", "count": 4} in listed["data"] and listed["count"] == len(listed["data"])
    page = ok(api.get("/api/tags/samples", params={"name": "relabel:7", "offset": 1, "limit": 2}))
    assert page == {"name": "relabel:7", "count": 4, "ids": [5, 9]}
    assert ok(api.post("/api/tags/remove", json={"name": "relabel:7", "samples": {"ids": [5]}}))["count"] == 3
    assert ok(api.post("/api/tags/rename", json={"name": "relabel:7", "new_name": "relabel:1"})) == {
        "name": "relabel:1", "count": 3}
    assert "relabel:7" not in run.annotations.tags()
    assert ok(api.delete("/api/tags", params={"name": "relabel:1"})) == {"name": "relabel:1", "count": 3}
    assert "relabel:1" not in run.annotations.tags()
    assert api.delete("/api/tags", params={"name": "relabel:1"}).status_code == 404


def test_a_tag_from_a_box_or_lasso_takes_every_sample_inside_that_the_filters_keep(api, run, table):
    x0, x1 = table["map_x"].quantile([0.2, 0.7])
    y0, y1 = table["map_y"].quantile([0.1, 0.8])
    inside = table["map_x"].between(x0, x1) & table["map_y"].between(y0, y1)
    want = table.loc[inside & (table["subset"] == "validation"), "sample_id"].tolist()
    body = {"name": "box", "samples": {"box": [x1, x0, y0, y1], "filters": {"subset": "validation"}}}
    assert ok(api.post("/api/tags", json=body))["count"] == len(want) > 0
    assert run.tagged("box").tolist() == sorted(want)
    square = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]  # the same rectangle as a lasso
    body = {"name": "lasso", "samples": {"polygon": square}}
    ok(api.post("/api/tags", json=body))
    strictly = table["map_x"].gt(x0) & table["map_x"].lt(x1) & table["map_y"].gt(y0) & table["map_y"].lt(y1)
    got = set(run.tagged("lasso").tolist())
    assert set(table.loc[strictly, "sample_id"]) <= got <= set(table.loc[inside, "sample_id"])


def test_saved_selections_round_trip_with_their_note(api, run):
    body = {"name": "thin sevens", "note": "ink below 0.1", "samples": {"ids": [4, 2, 8]}}
    saved = ok(api.post("/api/selections", json=body))
    assert saved["name"] == "thin sevens" and saved["note"] == "ink below 0.1" and saved["count"] == 3
    assert run.selection("thin sevens").ids.tolist() == [2, 4, 8]
    assert ok(api.post("/api/selections", json=body), 409)["error"] == "ConflictError"
    ok(api.post("/api/selections", json={**body, "samples": {"ids": [1]}, "overwrite": True}))
    assert ok(api.get("/api/selections/samples", params={"name": "thin sevens"}))["ids"] == [1]
    assert "thin sevens" in [s["name"] for s in ok(api.get("/api/selections"))["data"]]
    ok(api.post("/api/selections", json={**body, "name": "other"}))
    clash = api.post("/api/selections/rename", json={"name": "thin sevens", "new_name": "other"})
    assert ok(clash, 409)["detail"].startswith("A selection named 'other' exists")
    assert ok(api.post("/api/selections/rename", json={"name": "other", "new_name": "kept"}))["count"] == 3
    assert ok(api.delete("/api/selections", params={"name": "kept"}))["note"] == "ink below 0.1"
    assert [s.name for s in run.selections()] == ["thin sevens"]


def test_a_selection_saved_in_parts_is_their_union_with_the_first_note(api, run, table):
    """``append``: the page saves an id list of more than MAX_IDS ids in parts; a lasso part
    adds every sample inside it."""
    first = {"name": "in parts", "note": "first part", "samples": {"ids": [7, 3]}}
    created = ok(api.post("/api/selections", json=first))["created"]
    ok(api.post("/api/selections", json={"name": "in parts", "note": "", "samples": {"ids": [3, 12]}, "append": True}))
    x0, x1 = table["map_x"].quantile([0.4, 0.6])
    y0, y1 = table["map_y"].quantile([0.4, 0.6])
    lasso = {"polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}
    saved = ok(api.post("/api/selections", json={"name": "in parts", "samples": lasso, "append": True}))
    inside = table["map_x"].between(x0, x1) & table["map_y"].between(y0, y1)
    strictly = table["map_x"].gt(x0) & table["map_x"].lt(x1) & table["map_y"].gt(y0) & table["map_y"].lt(y1)
    got = set(run.selection("in parts").ids.tolist())
    assert set(table.loc[strictly, "sample_id"]) | {3, 7, 12} <= got <= set(table.loc[inside, "sample_id"]) | {3, 7, 12}
    assert saved["count"] == len(got) > 3 and saved["note"] == "first part" and saved["created"] == created
    missing = api.post("/api/selections", json={"name": "no such", "samples": {"ids": [1]}, "append": True})
    assert ok(missing, 404)["detail"].startswith("No saved selection 'no such' to add to")
    ok(api.delete("/api/selections", params={"name": "in parts"}))


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_exports_read_back_equal_to_the_tag(api, run, fmt):
    ids = [0, 7, 30, 31]
    ok(api.post("/api/tags", json={"name": "relabel:2", "samples": {"ids": ids}}))
    r = api.get("/api/tags/export", params={"name": "relabel:2", "format": fmt})
    assert r.status_code == 200, r.text
    assert "attachment" in r.headers["content-disposition"] and f".{fmt}" in r.headers["content-disposition"]
    got = {"csv": pd.read_csv, "parquet": pd.read_parquet, "json": pd.read_json}[fmt](io.BytesIO(r.content))
    want = run.samples(columns=["subset", "key", "label", "prediction", "loss"], where=[("sample_id", "in", ids)])
    assert got["sample_id"].tolist() == ids
    assert got["label"].tolist() == want["label"].tolist()
    assert got["prediction"].tolist() == want["prediction"].tolist()
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-6)
    assert got["label_name"].astype(str).tolist() == [run.classes[i] for i in want["label"]]
    assert got["new_label"].astype(str).tolist() == ["2"] * 4  # a relabel:X tag says X
    meta = run.metadata_columns()
    assert meta, "the tiny run has metadata to export"
    full = run.samples(columns=["subset", "key", *meta], where=[("sample_id", "in", ids)])
    for column in ["subset", "key", *meta]:  # every metadata column, read back equal
        if pd.api.types.is_numeric_dtype(full[column]) and not pd.api.types.is_bool_dtype(full[column]):
            np.testing.assert_allclose(got[column].astype(float), full[column].astype(float), rtol=1e-6, err_msg=column)
        else:
            assert got[column].astype(str).str.lower().tolist() == full[column].astype(str).str.lower().tolist(), column


def test_a_selection_exports_too(api, run):
    ok(api.post("/api/selections", json={"name": "export me", "samples": {"ids": [3, 1]}}))
    r = api.get("/api/selections/export", params={"name": "export me", "format": "json"})
    assert r.headers["content-type"].startswith("application/json")
    assert [row["sample_id"] for row in json.loads(r.content)] == [1, 3]


def test_concurrent_writers_lose_nothing(api, run):
    """Eight threads post to one tag at once, each its own ids: every id is kept."""
    chunks = [list(range(k, 120, 8)) for k in range(8)]
    codes: list[int] = []

    def post(ids):
        codes.append(api.post("/api/tags", json={"name": "busy", "samples": {"ids": ids}}).status_code)

    threads = [threading.Thread(target=post, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 8
    assert run.tagged("busy").tolist() == list(range(120))


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}],
)
def test_a_cross_origin_write_is_refused_and_writes_nothing(api, run, headers):
    before = run.annotations.tags()
    r = api.post("/api/tags", json={"name": "from elsewhere", "samples": {"ids": [1]}}, headers=headers)
    assert r.status_code == 403 and r.json()["error"] == "RequestRefusedError"
    r = api.delete("/api/tags", params={"name": "busy"}, headers=headers)
    assert r.status_code == 403
    assert run.annotations.tags().keys() == before.keys()
    same = api.post("/api/tags", json={"name": "from here", "samples": {"ids": [1]}},
                    headers={"Origin": LOCAL, "Sec-Fetch-Site": "same-origin"})  # fmt: skip
    assert same.status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "", "samples": {"ids": [1]}}, 422),
        ({"name": "   ", "samples": {"ids": [1]}}, 422),
        ({"name": "tab\there", "samples": {"ids": [1]}}, 422),
        ({"name": "x" * 101, "samples": {"ids": [1]}}, 422),
        ({"name": "ok", "samples": {"ids": [10**9]}}, 404),
        ({"name": "ok", "samples": {"ids": [1], "box": [0, 1, 0, 1]}}, 422),
        ({"name": "ok"}, 422),
    ],
)
def test_bad_tag_requests(api, body, status):
    r = api.post("/api/tags", json=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_every_name_the_schema_allows_the_store_takes():
    """The HTTP name pattern only admits printable characters (so positive fuzzing never meets
    a store refusal), and a few names people use match it."""
    import re

    from samplescope.server.models import NAME_PATTERN
    from samplescope.store.annotations import check_name

    allowed = re.findall(r"(.)-(.)", NAME_PATTERN.split("]")[0])
    for lo, hi in allowed:
        for code in range(ord(lo), ord(hi) + 1):
            check_name(f"a{chr(code)}", "tag")
    for name in ("mislabeled", "relabel:7", "needs review", "ошибка", "très/bien", "標記"):
        assert re.fullmatch(NAME_PATTERN, name), name


def test_an_untrusted_run_can_be_tagged(run_path, tmp_path):
    """Tags are data: a run whose code is not trusted is tagged, and its code never runs."""
    marker = tmp_path / "ran"
    theirs = untrusted_copy(run_path, tmp_path / "theirs", marker)
    untrusted = open_run(theirs)
    assert not untrusted.trusted
    with client_class()(create_app(untrusted, Settings(prewarm=False)), base_url=LOCAL) as c:
        assert ok(c.post("/api/tags", json={"name": "suspect", "samples": {"ids": [2, 4]}}))["count"] == 2
        assert c.get("/api/tags/export", params={"name": "suspect"}).status_code == 200
    assert open_run(theirs).tagged("suspect").tolist() == [2, 4]
    assert not marker.exists()
    untrusted.close()

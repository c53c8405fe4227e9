"""The JSON/binary API, through FastAPI's TestClient, against a small analysed run."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from samplescope.errors import RunError
from samplescope.server import Settings, create_app
from samplescope.server.encoding import decode_map


@pytest.fixture(scope="module")
def frame(tiny_run) -> pd.DataFrame:
    return tiny_run.samples()


@pytest.fixture(scope="module")
def numeric_meta(frame) -> str:
    """A numeric column that the map does not send by default (e.g. ``ink``)."""
    skip = {"sample_id", "index", "loss", "confidence", "margin", "map_x", "map_y", "label"}
    return next(
        c
        for c in frame.columns
        if c not in skip and not c.startswith("prob_") and pd.api.types.is_float_dtype(frame[c])
    )


def require_centroid_columns(frame: pd.DataFrame) -> None:
    needed = ["dist_to_gt_centroid", "nearest_centroid", "dist_to_centroid_0"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:  # integration metadata: MNIST's integration computes them, others may not
        pytest.skip(f"the run's integration provides no {', '.join(missing)}")


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"]
    return body


# --- /api/run and the page --------------------------------------------------------------------


def test_run_summary(client, tiny_run, frame):
    body = client.get("/api/run").json()
    assert body["name"] == tiny_run.name
    assert body["classes"] == [str(c) for c in tiny_run.classes]
    assert body["count"] == len(frame)
    assert sum(s["count"] for s in body["subsets"]) == len(frame)
    val = next(s for s in body["subsets"] if s["name"] == "validation")
    rows = frame[frame["subset"] == "validation"]
    assert val["accuracy"] == pytest.approx(rows["correct"].mean())
    kinds = {c["name"]: c["kind"] for c in body["columns"]}
    assert set(kinds) == set(frame.columns)
    assert kinds["loss"] == "numeric" and kinds["label"] == "categorical"
    assert kinds["correct"] == "bool" and kinds["cluster"] == "categorical"
    assert body["has_map"] is True


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/js/app.js" in page.text
    for path in ("/static/js/app.js", "/static/js/scatter.js", "/static/style.css"):
        assert client.get(path).status_code == 200, path


def test_openapi_lists_every_route_and_only_reads(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/run", "/api/map", "/api/samples", "/api/samples/{sample_id}",
        "/api/samples/{sample_id}/image.png", "/api/samples/{sample_id}/heatmap.png",
        "/api/samples/{sample_id}/heatmap.json", "/api/samples/{sample_id}/similar",
        "/api/similar", "/api/selection", "/api/confusion", "/api/metrics", "/api/aggregate",
        "/api/history", "/api/insights",
    ):  # fmt: skip
        assert path in paths, path
    writes = {(path, m.upper()) for path, ops in paths.items() for m in ops if m != "get"}
    # a read-only query with a body, and the tags and saved selections (routes/annotations.py)
    assert {w for w in writes if not w[0].startswith(("/api/tags", "/api/selections"))} == {("/api/selection", "POST")}


# --- the map payload --------------------------------------------------------------------------


def test_map_payload_decodes_to_every_sample(client, frame):
    r = client.get("/api/map")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    header, arrays = decode_map(r.content)
    n = len(frame)
    assert header["n"] == n and all(len(a) == n for a in arrays.values())
    np.testing.assert_allclose(arrays["x"], frame["map_x"].to_numpy(np.float32))
    np.testing.assert_allclose(arrays["y"], frame["map_y"].to_numpy(np.float32))
    np.testing.assert_array_equal(arrays["label"], frame["label"].to_numpy())
    np.testing.assert_array_equal(arrays["prediction"], frame["prediction"].to_numpy())
    np.testing.assert_allclose(arrays["loss"], frame["loss"].to_numpy(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(arrays["correct"], frame["correct"].to_numpy().astype(np.uint8))
    subsets = np.array(header["columns"]["subset"]["categories"])[arrays["subset"]]
    np.testing.assert_array_equal(subsets, frame["subset"].to_numpy())
    assert header["ids"] == "rows"  # sample ids are 0..N-1, so no id array is sent
    # compact: 18 bytes per point plus a small header
    assert len(r.content) < 18 * n + 4096


def test_map_colour_and_extra_columns(client, frame, numeric_meta):
    r = client.get("/api/map", params={"color": "cluster", "columns": f"{numeric_meta},correct"})
    header, arrays = decode_map(r.content)
    assert header["color"] == "cluster"
    cats = header["columns"]["cluster"]["categories"]
    decoded = np.array(cats)[arrays["cluster"]]
    np.testing.assert_array_equal(decoded, frame["cluster"].astype(str).to_numpy())
    meta = header["columns"][numeric_meta]
    assert meta["kind"] == "numeric" and meta["dtype"] == "float32"
    assert meta["min"] == pytest.approx(frame[numeric_meta].min(), rel=1e-5)
    np.testing.assert_allclose(arrays[numeric_meta], frame[numeric_meta], rtol=1e-5)


def test_map_is_revalidated_with_etag(client):
    first = client.get("/api/map", params={"color": "prediction"})
    again = client.get(
        "/api/map", params={"color": "prediction"}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""


def test_map_unknown_column_is_422(client):
    assert error_of(client.get("/api/map", params={"color": "nope"}), 422)["error"] == (
        "ParameterError"
    )


# --- sample tables ----------------------------------------------------------------------------


def test_samples_highest_loss(client, frame):
    body = client.get(
        "/api/samples",
        params={"sort": "loss", "order": "desc", "limit": 25, "subset": "validation"},
    ).json()
    val = frame[frame["subset"] == "validation"]
    assert body["count"] == len(val)
    losses = [r["loss"] for r in body["data"]]
    assert len(losses) == 25 and losses == sorted(losses, reverse=True)
    assert losses[0] == pytest.approx(val["loss"].max(), rel=1e-5)
    assert {r["subset"] for r in body["data"]} == {"validation"}
    row = body["data"][0]
    assert row["label_name"] == str(row["label"]) or row["label_name"]


def test_samples_confusion_cell_filter(client, frame):
    wrong = frame[~frame["correct"].astype(bool)].iloc[0]
    label, pred = int(wrong["label"]), int(wrong["prediction"])
    body = client.get("/api/samples", params={"label": label, "prediction": pred, "limit": 1000})
    expected = frame[(frame["label"] == label) & (frame["prediction"] == pred)]
    assert body.json()["count"] == len(expected)
    assert sorted(r["sample_id"] for r in body.json()["data"]) == sorted(expected["sample_id"])


def test_samples_filter_operators(client, frame):
    cut = float(frame["loss"].median())
    body = client.get(
        "/api/samples", params={"loss__gte": cut, "correct": "false", "limit": 0}
    ).json()
    assert body["count"] == int(((frame["loss"] >= cut) & ~frame["correct"].astype(bool)).sum())
    ids = frame["sample_id"].iloc[[3, 1, 2]].tolist()
    body = client.get("/api/samples", params={"ids": ",".join(map(str, ids)), "columns": "cluster"})
    assert [r["sample_id"] for r in body.json()["data"]] == sorted(ids)
    assert "cluster" in body.json()["data"][0]
    every = client.get("/api/samples", params={"columns": "*", "limit": 1}).json()["data"][0]
    twice = client.get("/api/samples", params={"columns": "cluster,cluster,loss", "limit": 2})
    assert twice.status_code == 200 and "cluster" in twice.json()["data"][0]
    assert set(frame.columns) <= set(every)
    cls = str(frame["label"].iloc[0])
    by_name = client.get("/api/samples", params={"label": cls, "limit": 0}).json()["count"]
    assert by_name == int((frame["label"] == frame["label"].iloc[0]).sum())
    inn = client.get("/api/samples", params={"cluster__in": "0,1", "limit": 0}).json()["count"]
    assert inn == int(frame["cluster"].isin([0, 1]).sum())


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 5000},
        {"offset": -1},
        {"order": "sideways"},
        {"sort": "nope"},
        {"nope": 1},
        {"loss__between": 1},
        {"loss__gte": "high"},
        {"label": "not-a-class"},
        {"ids": "1,two"},
        {"subset": "nope"},
        {"subset": "validation", "correct": "maybe"},
    ],
)
def test_samples_bad_parameters_are_422(client, params):
    error_of(client.get("/api/samples", params=params), 422)


def test_unknown_ids_are_404(client, frame):
    missing = int(frame["sample_id"].max()) + 1000
    for path in (
        f"/api/samples/{missing}",
        f"/api/samples/{missing}/image.png",
        f"/api/samples/{missing}/heatmap.png",
        f"/api/samples/{missing}/heatmap.json",
        f"/api/samples/{missing}/similar",
        f"/api/similar?ids=0,{missing}",
        f"/api/selection?ids={missing}",
        f"/api/samples?ids={missing}",
    ):
        body = error_of(client.get(path), 404)
        assert body["error"] == "NotFoundError" and str(missing) in body["detail"]
    assert error_of(client.get("/api/nothing"), 404)["error"] == "NotFound"


# --- one sample ------------------------------------------------------------------------------


def test_sample_detail(client, tiny_run, frame):
    require_centroid_columns(frame)
    row = frame.iloc[5]
    sid = int(row["sample_id"])
    body = client.get(f"/api/samples/{sid}").json()
    assert body["sample_id"] == sid and body["subset"] == row["subset"]
    assert set(frame.columns) <= set(body["row"])
    probs = [p["value"] for p in body["probabilities"]]
    assert len(probs) == len(tiny_run.classes) and sum(probs) == pytest.approx(1, abs=1e-3)
    dists = [c["value"] for c in body["centroid_distances"]]
    assert len(dists) == len(tiny_run.classes)
    assert body["nearest_centroid"] == int(np.argmin(dists))
    assert body["image_url"] == f"/api/samples/{sid}/image.png"


def test_image_png_is_cacheable(client, tiny_run):
    r = client.get("/api/samples/7/image.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert "max-age" in r.headers["cache-control"] and r.headers["etag"]
    img = np.asarray(Image.open(io.BytesIO(r.content)))
    np.testing.assert_array_equal(img, tiny_run.image(7))
    again = client.get("/api/samples/7/image.png", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients", "saliency"])
def test_heatmaps(client, tiny_run, method):
    r = client.get("/api/samples/3/heatmap.png", params={"method": method, "target": 1})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.mode == "RGBA" and img.size == tiny_run.image(3).shape[:2][::-1]
    body = client.get("/api/samples/3/heatmap.json", params={"method": method, "target": 1}).json()
    expected = tiny_run.heatmap(3, 1, method=method)
    assert body["target"] == 1 and body["shape"] == list(expected.shape)
    np.testing.assert_allclose(np.array(body["values"]), expected, atol=1e-5)


def test_heatmap_defaults_to_the_prediction(client, frame):
    body = client.get("/api/samples/4/heatmap.json").json()
    assert body["target"] == int(frame["prediction"].iloc[4]) and body["method"] == "gradcam"


@pytest.mark.parametrize("params", [{"method": "magic"}, {"target": 99}, {"target": "nope"}])
def test_heatmap_bad_parameters_are_422(client, params):
    error_of(client.get("/api/samples/3/heatmap.png", params=params), 422)


# --- neighbours and selections ----------------------------------------------------------------


def test_similar_to_one_sample(client, tiny_run, frame):
    body = client.get("/api/samples/10/similar", params={"k": 6}).json()
    assert body["query"] == [10] and body["count"] == 6 == len(body["data"])
    expected = tiny_run.similar(10, k=6)
    assert [r["sample_id"] for r in body["data"]] == expected["sample_id"].tolist()
    sims = [r["similarity"] for r in body["data"]]
    assert sims == sorted(sims, reverse=True)
    assert {"label", "prediction", "loss"} <= set(body["data"][0])
    val = client.get("/api/samples/10/similar", params={"k": 5, "subset": "validation"}).json()
    assert {r["subset"] for r in val["data"]} == {"validation"}


def test_similar_to_a_set(client):
    body = client.get("/api/similar", params={"ids": "1,2,3", "k": 4}).json()
    assert body["query"] == [1, 2, 3] and body["count"] == 4
    error_of(client.get("/api/similar", params={"ids": ""}), 422)
    error_of(client.get("/api/similar", params={"ids": "1", "k": 0}), 422)


def test_selection_stats(client, frame):
    ids = frame["sample_id"].iloc[:40].tolist()
    got = client.get("/api/selection", params={"ids": ",".join(map(str, ids))}).json()
    posted = client.post("/api/selection", json={"ids": ids}).json()
    assert got == posted
    rows = frame.iloc[:40]
    assert got["count"] == 40
    assert got["accuracy"] == pytest.approx(rows["correct"].mean())
    assert got["mean_loss"] == pytest.approx(rows["loss"].mean())
    assert sum(c["count"] for c in got["class_mix"]) == 40
    assert got["examples"][0] == int(rows.loc[rows["loss"].idxmax(), "sample_id"])
    error_of(client.post("/api/selection", json={"ids": "1,2"}), 422)


# --- metrics, aggregates, history, insights ---------------------------------------------------


def test_confusion_and_metrics(client, frame):
    cm = client.get("/api/confusion", params={"subset": "validation"}).json()
    matrix = np.array(cm["matrix"])
    val = frame[frame["subset"] == "validation"]
    assert matrix.sum() == len(val)
    assert matrix.trace() == int(val["correct"].sum())
    assert cm["subset"] == "validation" and len(cm["classes"]) == matrix.shape[0]
    metrics = client.get("/api/metrics", params={"subset": "train"}).json()
    train = frame[frame["subset"] == "train"]
    assert metrics["accuracy"] == pytest.approx(train["correct"].mean())
    assert len(metrics["per_class"]) == len(cm["classes"])
    error_of(client.get("/api/confusion", params={"subset": "nope"}), 422)


def test_aggregate_numeric(client, frame, numeric_meta):
    params = {"x": numeric_meta, "y": "loss", "bins": 8}
    body = client.get("/api/aggregate", params=params).json()
    assert body["kind"] == "numeric" and 1 <= len(body["data"]) <= 8
    assert sum(r["count"] for r in body["data"]) == len(frame)
    assert {"x_lo", "x_hi", "x_mid", "mean", "count"} <= set(body["data"][0])
    acc = client.get("/api/aggregate", params={**params, "y": "accuracy"}).json()
    assert all(0 <= r["mean"] <= 1 for r in acc["data"])


def test_aggregate_loss_vs_distance_to_centroid(client, frame):
    require_centroid_columns(frame)
    body = client.get("/api/aggregate", params={"x": "dist_to_gt_centroid", "bins": 10}).json()
    assert sum(r["count"] for r in body["data"]) == len(frame)


def test_aggregate_categorical_split(client, frame):
    body = client.get("/api/aggregate", params={"x": "label", "by": "subset"}).json()
    assert body["kind"] == "categorical"
    assert sum(r["count"] for r in body["data"]) == len(frame)
    assert {r["subset"] for r in body["data"]} == set(frame["subset"])
    assert all(r["x_value_name"] is not None for r in body["data"])


@pytest.mark.parametrize(
    "params", [{"x": "nope"}, {"x": "loss", "by": "nope"}, {"x": "loss", "bins": 0}]
)
def test_aggregate_bad_parameters_are_422(client, params):
    error_of(client.get("/api/aggregate", params=params), 422)


def test_history(client, tiny_run):
    body = client.get("/api/history").json()
    assert body["count"] == len(tiny_run.history()) > 0
    kinds = {r["kind"] for r in body["data"]}
    assert "epoch" in kinds
    epoch = next(r for r in body["data"] if r["kind"] == "epoch")
    assert {"epoch", "step", "train_loss", "val_loss", "val_acc"} <= set(epoch)


def test_insights_most_severe_first(client, frame):
    body = client.get("/api/insights").json()
    assert body["count"] == len(body["data"]) > 0
    ids = set(frame["sample_id"])
    for card in body["data"]:
        assert {"kind", "severity", "sample_ids", "text", "title", "id", "count"} <= set(card)
        assert set(card["sample_ids"]) <= ids
        assert card["count"] == card["details"].get("n_samples", len(card["sample_ids"]))
        assert card["count"] >= len(card["sample_ids"])


def test_insight_card_counts_every_sample_not_only_the_listed_ones():
    from samplescope.server.routes.insights import _card

    capped = _card(3, {"kind": "low_performance_cluster", "sample_ids": [5, 7], "details": {"n_samples": 823}})
    assert capped["count"] == 823 and capped["id"] == 3
    assert _card(0, {"kind": "outlier", "sample_ids": [1, 2, 3], "details": {}})["count"] == 3


# --- safety -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/static/../pyproject.toml",
        "/static/%2e%2e/pyproject.toml",
        "/static/..%2f..%2fpyproject.toml",
        "/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/static//etc/passwd",
        "/api/samples/..%2F..",
        "/api/samples/..%2F..%2Fpyproject.toml/image.png",
        "/pyproject.toml",
    ],
)
def test_no_path_traversal(client, path):
    r = client.get(path)
    assert r.status_code in (404, 422), (path, r.status_code)
    assert "[project]" not in r.text and "root:" not in r.text


def test_unanalysed_run_is_refused(tiny_run, monkeypatch):
    class Unanalysed:
        name, path, info = "raw", tiny_run.path, {"name": "raw"}

    with pytest.raises(RunError, match="not analysed"):
        create_app(Unanalysed(), Settings(prewarm=False))  # type: ignore[arg-type]


def test_missing_run_folder_is_refused(tmp_path):
    with pytest.raises(RunError, match="no run folder"):
        create_app(tmp_path / "missing", Settings(prewarm=False))


def test_settings():
    assert Settings().host == "127.0.0.1" and Settings().port == 8765
    assert Settings().is_loopback and Settings(host="localhost").is_loopback
    assert Settings(host="::1").is_loopback
    assert not Settings(host="0.0.0.0").is_loopback
    assert Settings(host="::1", port=9).url == "http://[::1]:9/"

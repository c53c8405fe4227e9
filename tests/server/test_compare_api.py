"""`serve RUN_B --compare RUN_A`: the Compare routes against compare() and pandas on both tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from samplescope.compare import compare
from samplescope.errors import RunError
from samplescope.run import open_run
from samplescope.server import Settings, create_app
from samplescope.server.encoding import decode_map
from samplescope.testing import make_tiny_run

from .conftest import LOCAL, untrusted_copy
from .conftest import test_client_class as client_class


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("compare-api") / "a", epochs=1, seed=1)  # a weaker model


@pytest.fixture(scope="module")
def api(tiny_run_path, run_a):
    app = create_app(tiny_run_path, Settings(run_path=tiny_run_path, prewarm=False, compare=run_a))
    with client_class()(app, base_url=LOCAL) as c:
        yield c


@pytest.fixture(scope="module")
def both(tiny_run_path, run_a) -> pd.DataFrame:
    """Both tables joined by subset and key, computed here with pandas."""
    a, b = open_run(run_a).samples(), open_run(tiny_run_path).samples()
    both = a.merge(b, on=["subset", "key"], suffixes=("_a", "_b"))
    ok_a, ok_b = both["prediction_a"] == both["label_a"], both["prediction_b"] == both["label_b"]
    both["status"] = np.select([~ok_a & ok_b, ok_a & ~ok_b, ~ok_a & ~ok_b], ["fixed", "broken", "still_wrong"],
                               "still_right")  # fmt: skip
    return both


def test_summary_counts_equal_pandas(api, both, run_a, tiny_run_path):
    assert api.get("/api/compare/status").json() == {"enabled": True, "a": str(run_a)}
    got = api.get("/api/compare").json()
    assert got["a"]["name"] == "a" and got["b"]["name"] == tiny_run_path.name
    for status in ("fixed", "broken", "still_wrong", "still_right"):
        assert got["counts"][status] == int((both["status"] == status).sum())
    assert got["counts"]["unmatched"] == 0
    for row in got["summary"]:
        part = both[both["subset"] == row["subset"]]
        assert row["fixed"] == int((part["status"] == "fixed").sum())
        assert row["accuracy_b"] == pytest.approx((part["prediction_b"] == part["label_b"]).mean())
    want = compare(run_a, tiny_run_path).confusion_change("validation")
    assert np.array_equal(np.asarray(got["confusion_change"]["validation"]), want)


def test_the_map_is_coloured_by_change_row_for_row(api, both):
    header, columns = decode_map(api.get("/api/compare/map").content)
    cats = columns["change"] if not isinstance(columns["change"], tuple) else columns["change"][0]
    names = np.asarray(header["columns"]["change"]["categories"])[np.asarray(cats)]
    want = both.set_index("sample_id_b")["status"].sort_index()
    assert len(names) == len(want)
    assert (names == want.to_numpy()).all()


def test_a_sampled_map_gets_every_samples_change_by_id(tiny_run_path, run_a, both):
    """A sampled map: /api/compare/map follows the overview's rows; ?every=true gives every
    sample's change by id, which the page gives the samples a zoomed-in viewport adds."""
    settings = Settings(run_path=tiny_run_path, prewarm=False, compare=run_a, map_full_max=500, map_overview_points=300)
    with client_class()(create_app(tiny_run_path, settings), base_url=LOCAL) as c:
        header, columns = decode_map(c.get("/api/compare/map").content)
        assert header["n"] == 300 and header["ids"] == "sample_id"
        header, columns = decode_map(c.get("/api/compare/map", params={"every": "true"}).content)
    names = np.asarray(header["columns"]["change"]["categories"])[np.asarray(columns["change"])]
    assert header["ids"] == "rows" and len(names) == len(both)
    assert (names == both.set_index("sample_id_b")["status"].sort_index().to_numpy()).all()


@pytest.mark.parametrize("status", ["fixed", "broken"])
def test_fixed_and_broken_lists_equal_pandas(api, both, status):
    want = both[both["status"] == status]
    rows, count = [], None
    while count is None or len(rows) < count:  # pages of at most 1000 (MAX_PAGE)
        got = api.get("/api/compare/samples", params={"status": status, "limit": 1000, "offset": len(rows)}).json()
        rows, count = rows + got["data"], got["count"]
    assert count == len(want)
    assert sorted(r["sample_id"] for r in rows) == sorted(want["sample_id_b"])
    changes = [r["loss_change"] for r in rows]
    assert changes == sorted(changes, reverse=status != "fixed")  # the biggest change first


def test_one_sample_shows_both_runs_probabilities(api, both, run_a, tiny_run_path):
    row = both[both["status"] == "fixed"].iloc[0]
    got = api.get(f"/api/compare/samples/{int(row['sample_id_b'])}").json()
    assert got["status"] == "fixed" and got["sample_id_a"] == int(row["sample_id_a"])
    for side, suffix in (("a", "_a"), ("b", "_b")):
        probs = [p["value"] for p in got[side]["probabilities"]]
        cols = [f"prob_{k}{suffix}" for k in range(len(probs))]
        np.testing.assert_allclose(probs, row[cols].to_numpy(float), rtol=1e-5)
        assert got[side]["prediction"] == int(row[f"prediction{suffix}"])
    assert got["a"]["correct"] is False and got["b"]["correct"] is True


def test_a_heatmaps_are_run_a_s_own_beside_b_s(api, both, run_a, tiny_run_path):
    """/api/compare/samples/{id}/heatmap.*: A's heatmap of the matched sample, computed by A's
    model (A's run called directly), not B's; the PNG has B's picture's size."""
    import io

    from PIL import Image

    row = both[both["status"] == "fixed"].iloc[0]
    sid_b, sid_a, label = int(row["sample_id_b"]), int(row["sample_id_a"]), int(row["label_a"])
    got = api.get(f"/api/compare/samples/{sid_b}/heatmap.json", params={"target": label, "method": "saliency"})
    assert got.status_code == 200, got.text
    values = np.asarray(got.json()["values"])
    want_a = open_run(run_a).heatmap(sid_a, label, method="saliency")
    want_b = open_run(tiny_run_path).heatmap(sid_b, label, method="saliency")
    np.testing.assert_allclose(values, want_a, atol=1e-5)
    assert not np.allclose(values, want_b, atol=1e-5)
    # no target: A's own (wrong) prediction, as the Compare box's first pane asks
    assert api.get(f"/api/compare/samples/{sid_b}/heatmap.json").json()["target"] == int(row["prediction_a"])
    png = api.get(f"/api/compare/samples/{sid_b}/heatmap.png", params={"target": label})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    b_png = api.get(f"/api/samples/{sid_b}/heatmap.png", params={"target": label})
    assert Image.open(io.BytesIO(png.content)).size == Image.open(io.BytesIO(b_png.content)).size
    assert png.content != b_png.content
    missing = api.get(f"/api/compare/samples/{10**9}/heatmap.png")
    assert missing.status_code == 404


def test_an_untrusted_run_a_s_code_never_runs_for_its_heatmaps(tiny_run_path, run_a, tmp_path):
    """A whose recorded integration is a foreign file: its heatmaps are refused with how to
    trust it, and the file never runs (samplescope/trust.py)."""
    marker = tmp_path / "their-code-ran"
    theirs = untrusted_copy(run_a, tmp_path / "theirs", marker)
    app = create_app(tiny_run_path, Settings(run_path=tiny_run_path, prewarm=False, compare=theirs))
    with client_class()(app, base_url=LOCAL) as c:
        summary = c.get("/api/compare").json()
        assert summary["a_trust"]["trusted"] is False and "samplescope trust" in summary["a_trust"]["hint"]
        r = c.get("/api/compare/samples/3/heatmap.png", params={"method": "saliency"})
        assert 400 <= r.status_code < 500 and "trust" in r.json()["detail"]
    assert not marker.exists()


def test_without_compare_the_routes_say_how_to_start_one(client):
    r = client.get("/api/compare")
    assert r.status_code == 404 and "--compare RUN_A" in r.json()["detail"]
    assert client.get("/api/compare/status").json() == {"enabled": False, "a": None}


def test_another_integrations_run_is_refused_before_serving(tiny_run_path, tmp_path):
    import json
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_run_path, other)
    info = json.loads((other / "run.json").read_text())
    info["integration"]["name"] = "fashion"
    (other / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunError, match="integration 'fashion'"):
        create_app(tiny_run_path, Settings(run_path=tiny_run_path, prewarm=False, compare=other))


def test_the_reports_comparison_sections(tiny_run_path, run_a, tmp_path):
    """`report RUN_B --compare RUN_A`: the counts the page quotes are compare()'s, and each figure is written."""
    from samplescope.report import compare as compare_page
    from samplescope.report.context import ReportContext

    run = open_run(tiny_run_path)
    ctx = ReportContext(run, tmp_path)
    made = compare_page.sections(ctx, run_a)
    keys = [s.key for s in made]
    assert keys == ["compare", "compare-map", "compare-classes", "compare-confusion", "compare-samples"]
    cmp = compare(run_a, tiny_run_path)
    val = cmp.summary.set_index("subset").loc["validation"]
    line = next(p for p in made[0].paragraphs if p.startswith("validation:"))
    assert f"{int(val['fixed']):,} fixed, {int(val['broken']):,} broken" in line
    for s in made[1:]:
        assert all((tmp_path / name).stat().st_size > 1000 for name in s.images)
    run.close()

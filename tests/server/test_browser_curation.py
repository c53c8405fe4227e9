"""The page's curation features in a real Chromium: tag a box selection and export it, save a
lasso selection with a note, colour the map by a tag, and the Compare view of
``samplescope serve RUN_B --compare RUN_A``."""

from __future__ import annotations

import shutil

import httpx
import pandas as pd
import pytest

from samplescope.testing import make_tiny_run

from .test_browser import (  # noqa: F401 - fixtures
    SAMPLED,
    attr,
    browser,
    browser_page,
    drag_box,
    open_map,
    shot,
    warm_compute_lane,
)

pytestmark = pytest.mark.browser

#: compare.js CHANGE_COLORS: the colour of each change on the map
CHANGE_COLORS = {"fixed": "#2ca02c", "broken": "#d62728", "still_wrong": "#ff7f0e", "still_right": "#c8c8c8"}


@pytest.fixture(scope="module")
def compare_runs(tiny_run_path, tmp_path_factory):
    """A weaker run A, and B: a copy of the tiny run (written to by these tests)."""
    root = tmp_path_factory.mktemp("curation-page")
    a = make_tiny_run(root / "a", epochs=1, seed=1)
    b = root / "b"
    shutil.copytree(tiny_run_path, b)
    return a, b


@pytest.fixture(scope="module")
def compare_server(compare_runs, tmp_path_factory):
    """B served with --compare A."""
    from samplescope.testing import serving

    a, b = compare_runs
    with serving(b, "--compare", str(a), log=tmp_path_factory.mktemp("compare-server") / "server.log") as base:
        warm_compute_lane(base)
        yield base


@pytest.fixture(scope="module")
def api(compare_server):
    with httpx.Client(base_url=compare_server, timeout=30) as c:
        yield c


def test_tag_a_box_selection_colour_by_it_and_export_it(browser, compare_server, api, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    with browser_page(browser, compare_server) as page:
        open_map(page)
        drag_box(page)
        n = int(attr(page, "selection-stats", "data-count"))
        page.fill("[data-testid=tag-form] [data-testid=tag-name]", "checked")
        page.click("[data-testid=tag-form] [data-testid=tag-apply]")
        expect(page.locator("[data-testid=tag-result]")).to_have_text(f"checked: {n:,} samples")
        assert {"name": "checked", "count": n} in api.get("/api/tags").json()["data"]
        row = page.locator("[data-testid=tag-row][data-name=checked]")
        expect(row.locator("[data-testid=tag-count]")).to_have_text(f"{n:,}")

        row.locator("[data-act=colour]").click()
        page.wait_for_selector("[data-testid=legend][data-column='tag:checked']")
        expect(page.locator("[data-testid=legend-item][data-value=true] .n")).to_have_text(f"{n:,}")
        shot(page, "tag-colour")

        with page.expect_download() as download:
            row.locator("[data-testid=tag-export-csv]").click()
        path = tmp_path / "checked.csv"
        download.value.save_as(path)
        exported = pd.read_csv(path)
        assert len(exported) == n
        assert exported["sample_id"].tolist() == api.get("/api/tags/samples", params={"name": "checked"}).json()["ids"]


def test_save_a_lasso_selection_with_a_note(browser, compare_server, api):  # noqa: F811
    from playwright.sync_api import expect

    with browser_page(browser, compare_server) as page:
        open_map(page)
        page.click("[data-testid=tool-lasso]")
        sid = page.evaluate("window.samplescope.drawnIds(1)[0]")
        c = page.evaluate("(id) => window.samplescope.pointAt(id)", sid)
        page.mouse.move(c["x"] - 40, c["y"] - 40)
        page.mouse.down()
        for dx, dy in ((40, -40), (40, 40), (-40, 40), (-40, -40)):
            page.mouse.move(c["x"] + dx, c["y"] + dy, steps=4)
        page.mouse.up()
        page.wait_for_selector("[data-testid=selection-stats]")
        n = int(attr(page, "selection-stats", "data-count"))
        page.fill("[data-testid=tag-form] [data-testid=tag-name]", "corner")
        page.fill("[data-testid=tag-form] [data-testid=selection-note]", "looked at on Tuesday")
        with page.expect_request(lambda r: r.url.endswith("/api/selections") and r.method == "POST") as sent:
            page.click("[data-testid=tag-form] [data-testid=selection-save]")
        # the lasso travels as its shape: the server finds every sample inside it, however many
        assert "polygon" in sent.value.post_data_json["samples"]
        expect(page.locator("[data-testid=tag-result]")).to_contain_text(f'saved "corner" ({n:,} samples)')
        saved = {s["name"]: s for s in api.get("/api/selections").json()["data"]}
        assert saved["corner"]["count"] == n and saved["corner"]["note"] == "looked at on Tuesday"
        expect(page.locator("[data-testid=saved-selection][data-name=corner]")).to_have_count(1)


def test_the_compare_view_lists_fixed_samples_with_both_runs_probabilities(browser, compare_server, api):  # noqa: F811
    from playwright.sync_api import expect

    summary = api.get("/api/compare").json()
    fixed = next(r for r in summary["summary"] if r["subset"] == "validation")["fixed"]
    with browser_page(browser, compare_server) as page:
        open_map(page, "/#view=compare")
        expect(page.locator("[data-testid=tab-compare]")).to_be_visible()
        expect(page.locator("[data-testid=compare-fixed-validation]")).to_have_text(f"{fixed:,}")
        first = page.locator("[data-testid=compare-thumb-fixed]").first
        sid = first.get_attribute("data-sample-id")
        first.click()
        box = page.locator("[data-testid=sample-view] [data-testid=compare-sample]")
        expect(box).to_have_attribute("data-status", "fixed")
        expect(box.locator("[data-testid=compare-prob]")).to_have_count(len(summary["classes"]))
        assert page.get_attribute("[data-testid=sample-view]", "data-sample-id") == sid
        # A's heatmaps beside B's, for the two classes the sample view explains, from run A
        pairs = page.locator("[data-testid=compare-heatmap-row]")
        expect(pairs).to_have_count(2)
        a_src = pairs.first.locator("[data-testid=compare-heatmap-a]").get_attribute("src")
        b_src = pairs.first.locator("[data-testid=compare-heatmap-b]").get_attribute("src")
        assert a_src.startswith(f"/api/compare/samples/{sid}/heatmap.png?") and b_src.startswith(f"/api/samples/{sid}/heatmap.png?")
        assert a_src.split("?")[1] == b_src.split("?")[1]  # the same class and method
        page.wait_for_function(  # a heatmap is computed by A's model in a worker: slow on a loaded machine
            """() => [...document.querySelectorAll("[data-testid=compare-heatmaps] img.hm")]
                 .every((i) => i.complete && i.naturalWidth > 0)""", timeout=120_000)
        assert api.get(a_src).content != api.get(b_src).content
        shot(page, "compare-sample")
        page.keyboard.press("Escape")
        page.click("[data-testid=compare-on-map]")
        page.wait_for_selector("[data-testid=legend][data-column=change]")
        counts = {k: int(page.locator(f"[data-testid=legend-item][data-value={k}] .n").inner_text().replace(",", ""))
                  for k in ("fixed", "broken")}  # fmt: skip
        assert counts == {"fixed": summary["counts"]["fixed"], "broken": summary["counts"]["broken"]}
        shot(page, "compare-map")


#: the screen position of the drawn point with the most drawn neighbours within 30 px (of 300 drawn)
DENSEST_POINT = """(() => {
  const s = window.samplescope, pts = s.drawnIds(300).map((id) => s.pointAt(id)).filter(Boolean);
  const near = (p) => pts.filter((q) => Math.hypot(p.x - q.x, p.y - q.y) < 30).length;
  return pts.reduce((best, p) => (near(p) > near(best) ? p : best), pts[0]);
})()"""


def test_zoomed_in_samples_of_a_sampled_map_take_their_change_colour(browser, compare_runs, tmp_path):  # noqa: F811
    """A sampled map coloured by change: the samples a zoomed-in viewport adds to the overview are
    drawn in their own change's colour (they were grey)."""
    from samplescope.compare import compare
    from samplescope.server.encoding import decode_map
    from samplescope.testing import serving

    a, b = compare_runs
    status = compare(a, b).samples.set_index("sample_id_b")["status"]
    with serving(b, settings={**SAMPLED, "compare": str(a)}, log=tmp_path / "server.log") as base:
        overview = set(decode_map(httpx.get(base + "/api/map").content)[1]["sample_id"].tolist())
        with browser_page(browser, base) as page:
            open_map(page, "/#color=change")
            page.wait_for_selector("[data-testid=legend][data-column=change]")
            # zoom in where the overview's points are densest (the map's centre may be empty)
            at = page.evaluate(DENSEST_POINT)
            page.mouse.move(at["x"], at["y"])
            for _ in range(8):
                page.mouse.wheel(0, -240)
            page.wait_for_selector("[data-testid=map-status][data-detail=complete]")
            page.wait_for_selector("[data-testid=legend][data-column=change]")
            drawn = page.evaluate("window.samplescope.drawnIds().map((id) => [id, window.samplescope.colorOf(id)])")
    added = [(i, c) for i, c in drawn if i not in overview]
    assert added, "the viewport added no sample to the overview"
    assert [c for _, c in drawn] == [CHANGE_COLORS[status[i]] for i, _ in drawn]


# --- a run of more than MAX_IDS samples, drawn whole ---------------------------------------------


@pytest.fixture(scope="module")
def large_server(tmp_path_factory):
    """100,500 samples (more than the 100,000 ids a request takes, fewer than map_full_max: the map
    draws every one): two features, an untrained MLP (create_run), analysed with PCA (~40 s)."""
    import numpy as np
    import torch

    from samplescope.integrations import from_arrays
    from samplescope.models.mlp import MLP, MLPConfig
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.pipeline.train import create_run
    from samplescope.testing import serving

    root = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100_500, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    integ = from_arrays(x[:95_000], y[:95_000], x[95_000:], y[95_000:], classes=["left", "right"])
    torch.manual_seed(0)
    path = create_run(integ, MLP(MLPConfig(in_features=2, num_classes=2, hidden=(8,))), root / "large", progress=False)
    analyze_run(path, progress=False, projection="pca")
    with serving(path, log=root / "server.log") as base:
        warm_compute_lane(base)
        yield base


def test_a_box_over_more_than_max_ids_samples_is_saved_whole(browser, large_server):  # noqa: F811
    from playwright.sync_api import expect

    from samplescope.server.limits import MAX_IDS

    with browser_page(browser, large_server) as page:
        open_map(page)
        assert attr(page, "map-status", "data-sampled") is None  # every sample drawn: the ids are in the page
        drag_box(page, margin=2)
        n = int(attr(page, "selection-stats", "data-count"))
        assert n > MAX_IDS
        page.fill("[data-testid=tag-form] [data-testid=tag-name]", "nearly-all")
        with page.expect_request(lambda r: r.url.endswith("/api/selections") and r.method == "POST") as sent:
            page.click("[data-testid=tag-form] [data-testid=selection-save]")
        assert "ids" not in sent.value.post_data_json["samples"]  # the box, not 100,000+ ids
        expect(page.locator("[data-testid=tag-result]")).to_contain_text(f'saved "nearly-all" ({n:,} samples)',
                                                                        timeout=60_000)  # fmt: skip
    saved = httpx.get(large_server + "/api/selections/samples", params={"name": "nearly-all", "limit": 0}).json()
    assert saved["count"] == n

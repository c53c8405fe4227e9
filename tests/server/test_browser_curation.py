"""The page's curation features in a real Chromium: tag a box selection and export it, save a
lasso selection with a note, colour the map by a tag, and the Compare view of
``samplescope serve RUN_B --compare RUN_A``."""

from __future__ import annotations

import shutil

import httpx
import pandas as pd
import pytest

from samplescope.testing import make_tiny_run

from .test_browser import attr, browser, browser_page, open_map, shot  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def compare_server(tiny_run_path, tmp_path_factory):
    """A copy of the tiny run (B, written to by these tests) served with --compare a weaker run A."""
    from samplescope.testing import serving

    root = tmp_path_factory.mktemp("curation-page")
    a = make_tiny_run(root / "a", epochs=1, seed=1)
    b = root / "b"
    shutil.copytree(tiny_run_path, b)
    with serving(b, "--compare", str(a), log=root / "server.log") as base:
        warm_compute_lane(base)
        yield base


def warm_compute_lane(base: str, seconds: float = 180) -> None:
    """Wait until a selection is answered: the compute lane's worker process starts on first use,
    which on a loaded machine can take longer than a browser test waits."""
    import time

    deadline = time.monotonic() + seconds
    while httpx.post(base + "/api/selection", json={"ids": [0]}, timeout=seconds).status_code != 200:
        assert time.monotonic() < deadline, "the compute lane never answered"
        time.sleep(1)


@pytest.fixture(scope="module")
def api(compare_server):
    with httpx.Client(base_url=compare_server, timeout=30) as c:
        yield c


def drag_box(page) -> None:
    page.click("[data-testid=tool-box]")
    box = page.locator("[data-testid=map]").bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.move(box["x"] + box["width"] - 5, box["y"] + box["height"] - 5, steps=5)
    page.mouse.up()
    page.wait_for_selector("[data-testid=selection-stats]")


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
        page.click("[data-testid=tag-form] [data-testid=selection-save]")
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
        shot(page, "compare-sample")
        page.keyboard.press("Escape")
        page.click("[data-testid=compare-on-map]")
        page.wait_for_selector("[data-testid=legend][data-column=change]")
        counts = {k: int(page.locator(f"[data-testid=legend-item][data-value={k}] .n").inner_text().replace(",", ""))
                  for k in ("fixed", "broken")}  # fmt: skip
        assert counts == {"fixed": summary["counts"]["fixed"], "broken": summary["counts"]["broken"]}
        shot(page, "compare-map")

"""The page's task views in a browser (Debian's chromium through Playwright): a regression run's
predicted-vs-true scatter and residual histogram, a multi-label run's per-label table."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

from samplescope import open_run
from samplescope.testing import serving

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[1] / "_artifacts" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    path = os.environ.get("SAMPLESCOPE_CHROMIUM") or shutil.which("chromium")
    if not path or not Path(path).exists():
        if os.environ.get("SAMPLESCOPE_REQUIRE_BROWSER") == "1":
            pytest.fail("SAMPLESCOPE_REQUIRE_BROWSER=1 but no chromium found")
        pytest.skip("no chromium found (install Debian's chromium or set SAMPLESCOPE_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=ARGS)
        yield b
        b.close()


@contextlib.contextmanager
def page_on(browser, run_path: Path):
    with serving(run_path) as base:
        context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=base)
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        failed: list[str] = []
        page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
        # the requests the task views make (other views' optional requests are theirs to test)
        ours = ("/api/run", "/api/metrics", "/api/samples", "/api/map")
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
                if r.status >= 400 and any(p in r.url for p in ours) else None)  # fmt: skip
        try:
            yield page
        finally:
            context.close()
        assert errors == [], f"uncaught errors: {errors}"
        assert failed == [], f"failed requests: {failed}"


def test_regression_errors_view(browser, diabetes_run):
    n_val = open_run(diabetes_run).count(subset="validation")
    with page_on(browser, diabetes_run) as page:
        page.goto("/#view=errors")
        page.wait_for_selector("[data-testid=regression-point]")
        assert page.locator("[data-testid=regression-point]").count() == n_val
        assert page.locator("[data-testid=residual-bar]").count() >= 8
        assert "MAE" in page.locator("[data-testid=metrics-line]").text_content()
        assert page.locator("[data-testid=table-label]").is_hidden()
        page.wait_for_selector("[data-testid=loss-row]")
        first = page.locator("[data-testid=loss-row]").first.locator("td").nth(3).text_content()
        float(first)  # the label column shows the target, a number
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "task-regression-errors.png"))
        page.locator("[data-testid=regression-point]").first.dispatch_event("click")
        page.wait_for_selector("[data-testid=sample-title]")
        assert page.locator("[data-testid=sample-label]").text_content().replace(".", "").isdigit()
        # a table row's picture is a chart, not pixel art: smooth scaling on white (MNIST keeps pixelated on black)
        style = page.evaluate("""() => { const d = document.createElement('div'); d.className = 'thumbs';
            const i = document.createElement('img'); d.append(i); document.body.append(d);
            const s = getComputedStyle(i); return [document.body.dataset.inputKind, s.imageRendering, s.backgroundColor]; }""")
        assert style == ["vector", "auto", "rgb(255, 255, 255)"]
        page.goto("/#view=dashboard")
        page.wait_for_selector("[data-testid=chart-x]")
        assert page.locator("[data-testid=preset-centroid]").is_hidden()  # no class centroids in a regression run


def test_multilabel_errors_view(browser, pairs_run):
    with page_on(browser, pairs_run) as page:
        page.goto("/#view=errors")
        page.wait_for_selector("[data-testid=label-row]")
        assert page.locator("[data-testid=label-row]").count() == 10
        assert "exact match" in page.locator("[data-testid=metrics-line]").text_content()
        page.locator("[data-testid=label-row][data-class='3']").click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=loss-row]')].length > 0 && "
            "[...document.querySelectorAll('[data-testid=loss-row]')].every((tr) => "
            "tr.cells[3].textContent.split('+').includes('3'))"
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "task-multilabel-errors.png"))

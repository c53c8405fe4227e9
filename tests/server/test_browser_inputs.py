"""The sample view for other input kinds: a vector run's page offers only the methods that apply,
says why the others do not and draws attributions as signed bars; a heatmap that fails shows
the server's message, never a broken image."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import httpx
import pytest

from samplescope.testing import serving

from .test_browser import TIMEOUT_MS, browser, open_map, shot  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.browser

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


@contextlib.contextmanager
def page_on(browser, base_url: str, allowed: tuple[str, ...] = ()):  # noqa: F811
    """A page on ``base_url``; fails on a console error, or an HTTP error answer, unless its URL
    contains one of ``allowed`` (a failed load is reported by URL, its console line names none)."""
    context = browser.new_context(viewport={"width": 1400, "height": 860}, base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    failed: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    try:
        yield page
    finally:
        context.close()
    assert [e for e in errors if not e.startswith("Failed to load resource")] == [], f"console errors: {errors}"
    unexpected = [f for f in failed if not any(a in f for a in allowed)]
    assert unexpected == [], f"HTTP errors: {unexpected}"


#: the page asks for /api/compare on every run; a run served without --compare answers 404
NO_COMPARE = "/api/compare"


@pytest.fixture(scope="module")
def breast_cancer_server(tmp_path_factory: pytest.TempPathFactory):
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.pipeline.train import train_run

    path = train_run("breast_cancer", tmp_path_factory.mktemp("bc") / "breast-cancer", progress=False, threads=1)
    analyze_run(path, progress=False, projection="pca")
    with serving(path, log=tmp_path_factory.mktemp("server") / "server.log") as base:
        yield base


def test_vector_run_offers_ig_and_saliency_and_draws_signed_bars(browser, breast_cancer_server):  # noqa: F811
    with httpx.Client(base_url=breast_cancer_server, timeout=30) as api:
        wrong = api.get("/api/samples?correct=false&sort=loss&order=desc&limit=1").json()["data"]
        sid = wrong[0]["sample_id"] if wrong else 3
        heat = api.get(f"/api/samples/{sid}/heatmap.json", params={"method": "integrated_gradients"}).json()
    with page_on(browser, breast_cancer_server, allowed=(NO_COMPARE,)) as page:
        open_map(page, f"/#sample={sid}&method=gradcam")  # asked for Grad-CAM: falls back to one that applies
        # the first heatmap starts the server's heatmap worker (imports torch, loads the model): slow when loaded
        page.wait_for_selector("[data-testid=heatmap-1] [data-testid=attr-bar]", timeout=120_000)
        assert page.is_disabled("[data-testid=method-gradcam]")
        assert not page.is_disabled("[data-testid=method-integrated_gradients]")
        why = page.inner_text("[data-testid=method-why]")
        assert "Grad-CAM" in why and "convolution" in why
        bars = page.locator("[data-testid=heatmap-1] [data-testid=attr-bar]")
        assert bars.count() == 12
        top = max(range(30), key=lambda i: abs(heat["values"][i]))
        assert bars.first.get_attribute("data-feature") == heat["labels"][top]
        page.click("[data-testid=method-saliency]")
        page.wait_for_selector("[data-testid=heatmap-1] .signed-bars")
        page.wait_for_function("document.querySelector('[data-testid=heatmap-1]').dataset.method === 'saliency'")
        page.click("[data-testid=method-integrated_gradients]")
        page.wait_for_function(
            "document.querySelector('[data-testid=heatmap-1]').dataset.method === 'integrated_gradients'")
        page.wait_for_selector("[data-testid=heatmap-1] [data-testid=attr-bar]")
        shot(page, "breast_cancer_sample")
        if os.environ.get("SAMPLESCOPE_UPDATE_DOCS_IMAGES"):  # the docs' picture, only when asked
            page.locator("[data-testid=sample-title]").scroll_into_view_if_needed()
            page.screenshot(path=DOCS_IMAGES / "breast_cancer_sample.png")


@pytest.fixture(scope="module")
def tokens_server(tmp_path_factory: pytest.TempPathFactory):
    """A token-sequence run (from_arrays, 240 + 60 sentences of 6 ids, a fifth of them padding)."""
    import numpy as np

    from samplescope.integrations import from_arrays
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.pipeline.train import train_run

    rng = np.random.default_rng(0)
    vocabulary = ["<pad>", "the", "good", "bad", "movie", "plot", "was", "very"]
    ids = rng.integers(3, len(vocabulary), size=(300, 6))
    y = rng.integers(0, 2, 300)
    ids[y == 1, rng.integers(0, 6, int(y.sum()))] = 2
    ids[:, 4:][rng.random((300, 2)) < 0.5] = 0  # padding at the end
    integ = from_arrays(ids[:240], y[:240], ids[240:], y[240:], classes=["no", "yes"], vocabulary=vocabulary)
    path = train_run(integ, tmp_path_factory.mktemp("tok") / "tokens", progress=False, threads=1)
    analyze_run(path, progress=False, projection="pca")
    sid = 240 + int(np.flatnonzero((ids[240:] == 0).any(axis=1))[0])  # a validation sentence with padding
    with serving(path, log=tmp_path_factory.mktemp("server") / "server.log") as base:
        yield base, sid, [vocabulary[i] for i in ids[sid] if i != 0]


def test_tokens_view_leaves_padding_out(browser, tokens_server):  # noqa: F811
    base, sid, words = tokens_server
    with httpx.Client(base_url=base, timeout=60) as api:
        heat = api.get(f"/api/samples/{sid}/heatmap.json", params={"method": "integrated_gradients"}).json()
    assert heat["labels"].count("<pad>") == sum(heat["padding"]) > 0
    with page_on(browser, base, allowed=(NO_COMPARE,)) as page:
        open_map(page, f"/#sample={sid}&method=integrated_gradients")
        page.wait_for_selector("[data-testid=heatmap-1] [data-testid=attr-token]", timeout=120_000)
        shown = page.locator("[data-testid=heatmap-1] [data-testid=attr-token]").all_inner_texts()
        assert shown == words  # the sentence's words in order, no <pad>


def test_a_failing_heatmap_shows_its_message(browser, live_server):  # noqa: F811
    message = "test: Grad-CAM failed for this sample; use integrated_gradients"
    with page_on(browser, live_server, allowed=(NO_COMPARE, "/heatmap.png")) as page:
        page.route("**/heatmap.png*", lambda route: route.fulfill(
            status=422, content_type="application/json", body=f'{{"error": "ParameterError", "detail": "{message}"}}'))
        open_map(page, "/#sample=3")
        page.wait_for_selector("[data-testid=heatmap-1-error]:not([hidden])")
        assert page.inner_text("[data-testid=heatmap-1-error]") == message
        assert page.is_hidden("[data-testid=heatmap-1]")  # no broken image


#: an integration of (2, 3, 4, 4) inputs (two RGB 4 x 4 frames), in a file so the served run can load it
VOLUMES = """
import numpy as np
from samplescope import Integration, Subset

volumes = np.random.default_rng(2).random((24, 2, 3, 4, 4)).astype(np.float32)
integ = Integration("volumes", classes=["a", "b"])
integ.subset("train")(lambda state: Subset(ids=range(18)))
integ.subset("validation")(lambda state: Subset(ids=range(18, 24)))
integ.input("grid")(lambda sample: volumes[sample.id])
integ.ground_truth(lambda sample: int(sample.id % 2))
"""


def test_a_run_without_pictures_says_why_and_asks_for_no_heatmaps(browser, tmp_path):  # noqa: F811
    """(2, 3, 4, 4) inputs, which no picture draws: the page says so once, shows no heatmap panes (no
    method applies) and makes no request that fails, instead of panes that each show an error."""
    import torch

    from samplescope import create_run
    from samplescope.integration.loader import load_integration
    from samplescope.pipeline.analyze import analyze_run
    from tests.integrations.test_no_code import VolumeNet

    source = tmp_path / "volumes.py"
    source.write_text(VOLUMES)
    integ = load_integration(source)
    torch.manual_seed(0)
    path = create_run(integ, VolumeNet(), tmp_path / "volumes", progress=False)
    analyze_run(path, progress=False, projection="pca", integration=source)
    with serving(path, "--trust", log=tmp_path / "server.log") as base, \
            page_on(browser, base, allowed=(NO_COMPARE,)) as page:  # fmt: skip
        open_map(page, "/#sample=20")
        page.wait_for_selector("[data-testid=sample-title]")
        notice = page.locator("[data-testid=trust-notice]")
        assert notice.is_visible() and "No sample pictures" in notice.inner_text()
        assert "(2, 3, 4, 4)" in notice.inner_text()
        assert page.locator("[data-testid=heatmap-1], [data-testid=heatmap-2]").count() == 0
        assert all(page.is_disabled(f"[data-testid=method-{m}]") for m in ("gradcam", "integrated_gradients", "saliency"))
        assert "(2, 3, 4, 4)" in page.inner_text("[data-testid=method-why]")
        assert page.locator("[data-testid=sample-metadata] tr").count() > 3  # the row's numbers are all there

"""The page in a real Chromium, against the real server on a small analysed run.

Uses Debian's chromium through Playwright (Playwright's own browser download is not
needed): set SAMPLESCOPE_CHROMIUM to use another binary. Without a browser these
tests skip, unless SAMPLESCOPE_REQUIRE_BROWSER=1 (as in CI), where they fail.

WebGL in headless Chromium with --disable-gpu runs on SwiftShader; if a Chromium
build refuses it, the page falls back to a 2D canvas (data-renderer="canvas2d"),
and SAMPLESCOPE_CHROMIUM_ARGS="--use-angle=swiftshader --enable-unsafe-swiftshader"
brings WebGL back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import textwrap
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[1] / "_artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000


def _unavailable(reason: str):
    if os.environ.get("SAMPLESCOPE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SAMPLESCOPE_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    path = os.environ.get("SAMPLESCOPE_CHROMIUM") or shutil.which("chromium")
    if not path or not Path(path).exists():
        _unavailable("no chromium found (install Debian's chromium or set SAMPLESCOPE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    extra = os.environ.get("SAMPLESCOPE_CHROMIUM_ARGS", "").split()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS + extra)
        yield b
        b.close()


@contextlib.contextmanager
def browser_page(browser, base_url: str):
    """A page on ``base_url`` in a fresh context; fails when the page logged an error."""
    context = browser.new_context(viewport={"width": 1400, "height": 860}, base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"console errors: {errors}"


@pytest.fixture
def page(browser, live_server):
    with browser_page(browser, live_server) as p:
        yield p


@pytest.fixture(scope="module")
def api(live_server):
    with httpx.Client(base_url=live_server, timeout=30) as c:
        yield c


def open_map(page, path: str = "/") -> None:
    page.goto(path)
    page.wait_for_selector("[data-testid=map][data-ready='1']", state="attached")


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def attr(page, testid: str, name: str) -> str | None:
    return page.get_attribute(f"[data-testid={testid}]", name)


def images_loaded(page, selector: str) -> int:
    return page.evaluate(
        """(sel) => [...document.querySelectorAll(sel)]
             .filter((i) => i.complete && i.naturalWidth > 0).length""",
        selector,
    )


def wait_images(page, selector: str, count: int) -> None:
    page.wait_for_function(
        """([sel, n]) => {
             const imgs = [...document.querySelectorAll(sel)];
             return imgs.length >= n && imgs.every((i) => i.complete && i.naturalWidth > 0);
           }""",
        arg=[selector, count],
    )


# --- map ---------------------------------------------------------------------------------------


def test_map_draws_every_sample(page, api):
    n = api.get("/api/run").json()["count"]
    open_map(page)
    assert attr(page, "map", "data-total") == str(n)
    assert attr(page, "map", "data-point-count") == str(n)
    assert attr(page, "map", "data-renderer") in ("webgl", "canvas2d")
    drawn_at = page.evaluate("window.__mapDrawnAt")
    assert drawn_at > 0
    print(
        f"map drawn {drawn_at:.0f} ms after navigation, renderer {attr(page, 'map', 'data-renderer')}"
    )
    shot(page, "map")


def test_recolour_by_prediction_changes_legend_and_url(page):
    open_map(page)
    assert attr(page, "legend", "data-column") == "label"
    before = page.locator("[data-testid=legend-item] .n").all_inner_texts()
    page.select_option("[data-testid=color-select]", "prediction")
    page.wait_for_selector("[data-testid=legend][data-column=prediction]")
    after = page.locator("[data-testid=legend-item] .n").all_inner_texts()
    assert after != before  # counts per predicted class differ from counts per label
    assert "color=prediction" in page.url
    page.select_option("[data-testid=color-select]", "loss")
    page.wait_for_selector("[data-testid=legend][data-column=loss] .ramp")
    shot(page, "map-colour-loss")
    page.reload()  # the URL restores the view
    page.wait_for_selector("[data-testid=map][data-ready='1']")
    assert page.input_value("[data-testid=color-select]") == "loss"


def test_subset_filter_and_legend_filter(page, api):
    runinfo = api.get("/api/run").json()
    val = next(s for s in runinfo["subsets"] if s["name"] == "validation")
    open_map(page)
    page.select_option("[data-testid=subset-filter]", "validation")
    page.wait_for_selector(f"[data-testid=map][data-point-count='{val['count']}']")
    page.select_option("[data-testid=subset-filter]", "all")
    page.locator("[data-testid=legend-item]").first.click()  # show only one label
    first = page.locator("[data-testid=legend-item]").first
    count = int(first.locator(".n").inner_text().replace(",", ""))
    page.wait_for_selector(f"[data-testid=map][data-point-count='{count}']")
    assert page.locator("[data-testid=filter-chip]").count() == 1


def test_hover_and_click_a_dot_opens_its_sample(page):
    open_map(page)
    sid = page.evaluate("window.samplescope.drawnIds(1)[0]")
    pos = page.evaluate("(id) => window.samplescope.pointAt(id)", sid)
    page.mouse.move(pos["x"], pos["y"])
    page.wait_for_selector("[data-testid=tooltip]:not([hidden])")
    hovered = attr(page, "tooltip", "data-sample-id")
    page.mouse.click(pos["x"], pos["y"])
    page.wait_for_selector("[data-testid=sample-view]:not([hidden]) [data-testid=sample-image]")
    assert attr(page, "sample-view", "data-sample-id") == hovered
    wait_images(page, "[data-testid=sample-image], img.hm", 3)
    assert page.locator("[data-testid=prob-bar]").count() > 0
    assert page.locator("[data-testid=prob-bar].gt").count() == 1
    page.click("[data-testid=method-integrated_gradients]")
    page.wait_for_function(
        "document.querySelector('[data-testid=heatmap-1]').src.includes('integrated_gradients')"
    )
    wait_images(page, "img.hm", 2)
    shot(page, "sample")


def test_sample_view_marks_nearest_and_true_centroid(page, api):
    columns = {c["name"] for c in api.get("/api/run").json()["columns"]}
    if "nearest_centroid" not in columns:  # integration metadata (MNIST's integration has it)
        pytest.skip("the run's integration provides no nearest_centroid / dist_to_centroid_k")
    wrong = api.get("/api/samples?correct=false&sort=loss&order=desc&limit=1").json()["data"][0]
    open_map(page, f"/#sample={wrong['sample_id']}")
    page.wait_for_selector("[data-testid=centroid-bar]")
    assert page.locator("[data-testid=centroid-bar].nearest").count() == 1
    assert page.locator("[data-testid=centroid-bar].gt").count() == 1
    detail = api.get(f"/api/samples/{wrong['sample_id']}").json()
    if detail["nearest_centroid"] != wrong["label"]:
        assert page.locator("[data-testid=centroid-note]").is_visible()


def test_fetch_similars_shows_k_images(page, api):
    open_map(page, "/#sample=3&k=8")
    page.wait_for_selector("[data-testid=fetch-similars]")
    page.click("[data-testid=fetch-similars]")
    page.wait_for_selector("[data-testid=similar-item]")
    assert page.locator("[data-testid=similar-item]").count() == 8
    wait_images(page, "[data-testid=similar-item] img", 8)
    expected = [r["sample_id"] for r in api.get("/api/samples/3/similar?k=8").json()["data"]]
    shown = page.eval_on_selector_all(
        "[data-testid=similar-item]", "els => els.map(e => +e.dataset.sampleId)"
    )
    assert shown == expected
    assert attr(page, "map", "data-highlight-count") == "9"  # the sample and its 8 neighbours
    shot(page, "similars")


def drag_box(page, margin: float = 5) -> None:
    """Draw a box selection over the whole map, ``margin`` pixels inside its edges, and wait for its panel."""
    page.click("[data-testid=tool-box]")
    box = page.locator("[data-testid=map]").bounding_box()
    page.mouse.move(box["x"] + margin, box["y"] + margin)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.move(box["x"] + box["width"] - margin, box["y"] + box["height"] - margin, steps=5)
    page.mouse.up()
    page.wait_for_selector("[data-testid=selection-stats]")


def warm_compute_lane(base: str, seconds: float = 180) -> None:
    """Wait until a selection is answered: the compute lane's worker process starts on first use,
    which on a loaded machine can take longer than a browser test waits."""
    deadline = time.monotonic() + seconds
    while httpx.post(base + "/api/selection", json={"ids": [0]}, timeout=seconds).status_code != 200:
        assert time.monotonic() < deadline, "the compute lane never answered"
        time.sleep(1)


def test_box_selection_opens_the_selection_panel(page):
    open_map(page)
    drag_box(page)
    n = int(attr(page, "selection-stats", "data-count"))
    assert n == int(attr(page, "map", "data-point-count"))  # the box covers every point
    # the thumbnail grid fills in after the stats: wait for it rather than race it
    from playwright.sync_api import expect

    expect(page.locator("[data-testid=selection-grid] [data-testid=thumb]")).to_have_count(min(n, 60))
    shot(page, "selection")


def test_lasso_selection_matches_the_points_inside(page):
    open_map(page)
    page.click("[data-testid=tool-lasso]")
    sid = page.evaluate("window.samplescope.drawnIds(1)[0]")
    c = page.evaluate("(id) => window.samplescope.pointAt(id)", sid)
    count_within = """([x, y, r]) => window.samplescope.drawnIds().filter((id) => {
        const p = window.samplescope.pointAt(id);
        return Math.abs(p.x - x) < r && Math.abs(p.y - y) < r; }).length"""
    surely_in = page.evaluate(count_within, [c["x"], c["y"], 28.5])
    maybe_in = page.evaluate(count_within, [c["x"], c["y"], 31.5])
    page.mouse.move(c["x"] - 30, c["y"] - 30)
    page.mouse.down()
    for dx, dy in ((30, -30), (30, 30), (-30, 30), (-30, -30)):  # a square around the point
        page.mouse.move(c["x"] + dx, c["y"] + dy, steps=4)
    page.mouse.up()
    page.wait_for_selector("[data-testid=selection-stats]")
    n = int(attr(page, "selection-stats", "data-count"))
    assert 1 <= surely_in <= n <= maybe_in  # points on the edge may go either way


def test_canvas_fallback_draws_every_sample(page, api):
    n = api.get("/api/run").json()["count"]
    open_map(page, "/?renderer=canvas")
    assert attr(page, "map", "data-renderer") == "canvas2d"
    assert attr(page, "map", "data-point-count") == str(n)


# --- other views -------------------------------------------------------------------------------


def test_confusion_cell_lists_its_samples(page, api):
    open_map(page, "/#view=errors")
    page.wait_for_selector("[data-testid=loss-row]")
    losses = page.eval_on_selector_all(
        "[data-testid=loss-row] td:nth-child(6)", "tds => tds.map(t => +t.textContent)"
    )
    assert losses == sorted(losses, reverse=True)
    cm = api.get("/api/confusion?subset=validation").json()["matrix"]
    i, j = max(
        ((i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j),
        key=lambda c: cm[c[0]][c[1]],
    )
    page.click(f"[data-testid=confusion-cell][data-label='{i}'][data-prediction='{j}']")
    page.wait_for_selector(f"[data-testid=loss-table][data-count='{cm[i][j]}']")
    assert page.locator("[data-testid=loss-row]").count() == min(cm[i][j], 50)
    shot(page, "errors")


def test_dashboard_preset_draws_one_point_per_bin(page, api):
    columns = {c["name"] for c in api.get("/api/run").json()["columns"]}
    if "dist_to_gt_centroid" not in columns:  # integration metadata (MNIST's integration has it)
        pytest.skip("the run's integration provides no dist_to_gt_centroid for the preset")
    open_map(page, "/#view=dashboard&x=label")
    page.wait_for_selector("[data-testid=curve-loss] [data-testid=chart-point]")
    page.click("[data-testid=preset-centroid]")
    page.wait_for_function(
        """() => { const c = document.querySelector('[data-testid=builder-chart]');
                   return c.dataset.bins && !c.dataset.loading && c.querySelector('circle'); }"""
    )
    assert page.input_value("[data-testid=chart-x]") == "dist_to_gt_centroid"
    bins = api.get("/api/aggregate?x=dist_to_gt_centroid&y=loss&bins=10").json()["data"]
    points = page.locator("[data-testid=builder-chart] [data-testid=chart-point]")
    assert points.count() == len(bins) > 1
    epochs = [r for r in api.get("/api/history").json()["data"] if r["kind"] == "epoch"]
    curve = page.locator("[data-testid=curve-loss] [data-testid=chart-point]")
    assert curve.count() == 2 * len(epochs)  # train and validation per epoch
    shot(page, "dashboard")


def test_insight_card_filters_the_map(page):
    open_map(page, "/#view=insights")
    card = page.locator("[data-testid=insight-card]").first
    card.wait_for()
    count = card.get_attribute("data-shown")  # the ids the insight lists (capped, most relevant first)
    assert 0 < int(count) <= int(card.get_attribute("data-count"))
    shot(page, "insights")
    card.click()
    page.wait_for_selector(f"[data-testid=map][data-point-count='{count}']")
    page.wait_for_selector(f"[data-testid=selection-stats][data-count='{count}']")
    assert "insight=" in page.url
    shot(page, "map-insight")


# --- exact values --------------------------------------------------------------------------------

#: scikit-learn's digits six times over (10,782 samples, so sample ids pass 10,000) with named
#: classes and a large integer column: numbers four significant digits would round, and class
#: names that differ from class indices.
NAMED_DIGITS = textwrap.dedent(
    """
    import numpy as np

    from samplescope import Batch, Integration, Subset
    from samplescope.integration.helpers import centroid_distance_columns, class_centroids

    NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    COPIES = 6
    N_TRAIN = 9000
    FIRST_FILE = 42_000
    named = Integration("named-digits", classes=NAMES, version="1")


    @named.preprocess
    def load():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.tile((bunch.images / 16.0).astype(np.float32), (COPIES, 1, 1))
        labels = np.tile(bunch.target.astype(np.int64), COPIES)
        centroids = class_centroids(images[:N_TRAIN], labels[:N_TRAIN], 10)
        return {"images": images, "labels": labels, "centroids": centroids}


    @named.subset("train")
    def train(state):
        return Subset(ids=list(range(N_TRAIN)), data=state)


    @named.subset("validation")
    def validation(state):
        return Subset(ids=list(range(N_TRAIN, len(state["labels"]))), data=state)


    def rows(batch):
        return np.asarray(batch.ids, dtype=np.int64)


    @named.input("image", batched=True)
    def image(batch):
        return batch.data["images"][rows(batch), None]


    @named.ground_truth_batched
    def label(batch):
        return batch.data["labels"][rows(batch)]


    @named.metadata("file", batched=True)
    def file(batch):
        return {"file_number": FIRST_FILE + rows(batch), "ink": image(batch).mean(axis=(1, 2, 3))}


    @named.metadata("centroid_distances", batched=True)
    def centroid_distances(batch):
        return centroid_distance_columns(image(batch)[:, 0], label(batch), batch.state["centroids"])


    @named.visualizer("image")
    def picture(sample):
        return (sample.data["images"][sample.id] * 255).round().astype(np.uint8)
    """
)


@pytest.fixture(scope="module")
def named_server(tmp_path_factory: pytest.TempPathFactory):
    """A real server on a one-epoch run of NAMED_DIGITS (its integration file named to serve)."""
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.pipeline.train import train_run

    root = tmp_path_factory.mktemp("named")
    source = root / "named_digits.py"
    source.write_text(NAMED_DIGITS)
    run = root / "run"
    train_run(str(source), run, epochs=1, batch_size=64, progress=False)
    analyze_run(run, projection="pca", progress=False)
    from samplescope.testing import serving

    with serving(run, "--integration", str(source), log=root / "server.log") as base:
        yield base


@pytest.fixture
def named_page(browser, named_server):
    with browser_page(browser, named_server) as p:
        yield p


def metadata_cells(page) -> dict[str, str]:
    """The sample view's metadata table as {column: shown text}."""
    page.wait_for_selector("[data-testid=sample-metadata] tr")
    return page.eval_on_selector_all(
        "[data-testid=sample-metadata] tr",
        "trs => Object.fromEntries(trs.map(tr => [tr.cells[0].textContent, tr.cells[1].textContent]))",
    )


def test_metadata_table_shows_exact_integers_and_class_names(named_page, named_server):
    with httpx.Client(base_url=named_server, timeout=30) as api:
        run = api.get("/api/run").json()
        sample = 10018  # four significant digits would show 10020
        row = api.get(f"/api/samples/{sample}").json()["row"]
    classes = run["classes"]
    assert {"label", "prediction", "nearest_centroid"} <= set(run["class_columns"])
    open_map(named_page, f"/#sample={sample}")
    cells = metadata_cells(named_page)
    assert row["sample_id"] == 10018 and row["file_number"] == 52018
    assert cells["sample_id"] == "10018"
    assert cells["file_number"] == "52018"
    assert cells["index"] == str(row["index"])
    for column in ("label", "prediction", "nearest_centroid"):
        assert cells[column] == classes[row[column]], column  # "three", not "3"
    assert cells["ink"] == f"{row['ink']:.4g}"  # a float in (0, 1): four significant digits
    assert all(name for name in cells), "every value has its column's name"
    wait_images(named_page, "[data-testid=sample-image]", 1)
    named_page.locator("[data-testid=sample-metadata]").scroll_into_view_if_needed()
    shot(named_page, "sample-metadata")


def test_similar_samples_show_labelled_loss_and_similarity_apart(page, api):
    open_map(page, "/#sample=3&k=12")
    page.click("[data-testid=fetch-similars]")
    page.wait_for_selector("[data-testid=similar-item]")
    wait_images(page, "[data-testid=similar-item] img", 12)
    rows = api.get("/api/samples/3/similar?k=12").json()["data"]
    losses = page.locator("[data-testid=similar-item] [data-testid=thumb-loss]").all_inner_texts()
    sims = page.locator("[data-testid=similar-item] [data-testid=thumb-similarity]").all_inner_texts()
    assert len(losses) == len(sims) == len(rows) == 12
    for text, r in zip(losses, rows, strict=True):
        assert text.startswith("loss ")
        assert float(text.removeprefix("loss ")) == pytest.approx(r["loss"], rel=5e-3, abs=5e-4)
    for text, r in zip(sims, rows, strict=True):
        assert text == f"sim {r['similarity']:.3f}"
    # every caption stays inside its own tile, and no two tiles overlap
    boxes = page.eval_on_selector_all(
        "[data-testid=similar-item]",
        """tiles => tiles.map(t => {
             const r = t.getBoundingClientRect();
             const caps = [...t.querySelectorAll('.cap')].map(c => c.getBoundingClientRect());
             return {tile: [r.left, r.top, r.right, r.bottom],
                     inside: caps.every(c => c.left >= r.left - 0.5 && c.right <= r.right + 0.5
                                             && c.top >= r.top - 0.5 && c.bottom <= r.bottom + 0.5),
                     fits: [...t.querySelectorAll('.cap')].every(c => c.scrollWidth <= c.clientWidth + 1)};
           })""",
    )
    assert all(b["inside"] for b in boxes)
    assert all(b["fits"] for b in boxes), "a caption is cut: the tiles are too narrow for it"
    tiles = [b["tile"] for b in boxes]
    for i, a in enumerate(tiles):
        for b in tiles[i + 1 :]:
            apart = a[2] <= b[0] + 0.5 or b[2] <= a[0] + 0.5 or a[3] <= b[1] + 0.5 or b[3] <= a[1] + 0.5
            assert apart, (a, b)
    shot(page, "similars-captions")


def test_sample_drawer_closes_on_another_view_and_on_escape(page):
    open_map(page, "/#sample=3")
    page.wait_for_selector("[data-testid=sample-view]:not([hidden]) [data-testid=sample-title]")
    page.click("[data-testid=tab-errors]")
    page.wait_for_selector("[data-testid=sample-view]", state="hidden")
    assert "sample=" not in page.url
    page.locator("[data-testid=loss-row]").first.click()  # a sample opened in this view
    page.wait_for_selector("[data-testid=sample-view]:not([hidden]) [data-testid=sample-title]")
    page.click("[data-testid=heatmap-opacity]")  # focus inside the drawer does not keep it open
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=sample-view]", state="hidden")
    assert "sample=" not in page.url
    page.go_back()  # history brings the sample back, in the view it was opened in
    page.wait_for_selector("[data-testid=sample-view]:not([hidden]) [data-testid=sample-title]")
    assert "view=errors" in page.url


def test_legend_colours_are_the_reports_class_colours(page, api):
    from samplescope.report.draw import class_colors

    n = len(api.get("/api/run").json()["classes"])
    open_map(page)
    shown = page.eval_on_selector_all(
        "[data-testid=legend-item] .sw", "sws => sws.map(s => getComputedStyle(s).backgroundColor)"
    )
    expected = [
        "rgb({}, {}, {})".format(*(round(255 * c) for c in rgba[:3])) for rgba in class_colors(n)
    ]
    assert shown == expected


@pytest.fixture(scope="module")
def untrusted_server(tiny_run_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real server on a copy of the tiny run whose recorded integration is a file that writes a marker."""
    from samplescope.testing import serving

    from .conftest import untrusted_copy

    root = tmp_path_factory.mktemp("untrusted")
    marker = root / "their-code-ran"
    run = untrusted_copy(tiny_run_path, root / "theirs", marker)
    with serving(run, log=root / "server.log") as base:
        yield base, marker


def test_an_untrusted_run_opens_read_only_and_says_how_to_trust_it(browser, untrusted_server):
    base, marker = untrusted_server
    asked: list[str] = []
    with browser_page(browser, base) as page:
        page.on("request", lambda r: asked.append(r.url))
        open_map(page, "/#sample=3&k=6")
        notice = page.locator("[data-testid=trust-notice]")
        notice.wait_for(state="visible")
        assert "samplescope trust" in notice.text_content()
        page.wait_for_selector("[data-testid=sample-metadata] tr")  # tables, map and neighbours still work
        page.click("[data-testid=fetch-similars]")
        page.wait_for_selector("[data-testid=similar-grid] .thumb")
        shot(page, "untrusted-run")
    assert not [u for u in asked if "/image.png" in u or "/heatmap.png" in u], "the page asked for code-made pictures"
    assert not marker.exists()


# --- a run too large to draw whole (the threshold forced small) ---------------------------------


#: a server that treats the tiny run as large: its map is a 300-point overview
SAMPLED = {"prewarm": False, "map_full_max": 500, "map_overview_points": 300}


@pytest.fixture(scope="module")
def sampled_server(tiny_run_path, tmp_path_factory):
    """The tiny run served as if it were large: its map is a 300-point overview."""
    from samplescope.testing import serving

    with serving(tiny_run_path, settings=SAMPLED, log=tmp_path_factory.mktemp("sampled") / "server.log") as base:
        yield base


def test_a_sampled_map_draws_an_overview_and_every_sample_when_zoomed(browser, sampled_server):
    context = browser.new_context(viewport={"width": 1400, "height": 860}, base_url=sampled_server)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    total = httpx.get(sampled_server + "/api/run").json()["count"]
    open_map(page)
    assert attr(page, "map-status", "data-sampled") == "1"
    assert 0 < int(attr(page, "map", "data-point-count")) <= 300
    # the legend counts every sample, not the drawn ones
    page.wait_for_selector(f"[data-testid=legend][data-total='{total}']")
    # a box over the whole map selects every sample, drawn or not
    page.click("[data-testid=tool-box]")
    box = page.locator("[data-testid=map]").bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=6)
    page.mouse.up()
    page.wait_for_selector(f"[data-testid=selection-stats][data-count='{total}']")
    page.click("[data-testid=close-selection]")
    # zoomed in, the page asks for its viewport and draws every sample in it
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(8):
        page.mouse.wheel(0, -240)
    page.wait_for_selector("[data-testid=map-status][data-detail=complete]")
    drawn = page.evaluate("window.samplescope.drawnIds().length")
    assert drawn > 0
    shot(page, "map-sampled-zoomed")
    context.close()
    assert errors == []

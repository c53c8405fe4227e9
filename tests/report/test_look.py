"""The report looks like the page: the same colour for each class, pictures drawn as the page shows them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba

from samplescope import open_run
from samplescope.report import figures_map
from samplescope.report.build import build_report
from samplescope.report.context import ReportContext
from samplescope.report.draw import class_colors, new_figure, show_image
from samplescope.testing import make_tiny_run

STATIC = Path(__file__).resolve().parents[2] / "samplescope" / "server" / "static"


def page_palette() -> list[str]:
    """The class colours the page draws with: colors.js takes them from palette.json."""
    colors_js = (STATIC / "js" / "colors.js").read_text()
    assert 'import palette from "../palette.json" with { type: "json" };' in colors_js
    assert "export const PALETTE = palette.categorical;" in colors_js
    assert "categoryColor(i) {\n  return PALETTE[i % PALETTE.length];" in colors_js
    return json.loads((STATIC / "palette.json").read_text())["categorical"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("look-run") / "digits")


@pytest.mark.parametrize("n", [1, 10, 20, 23])
def test_every_class_has_the_pages_colour(n: int):
    page = page_palette()
    assert len(page) == 20
    report = class_colors(n)
    assert report.shape == (n, 4)
    for k in range(n):
        assert tuple(report[k]) == to_rgba(page[k % len(page)]), f"class {k}"


def test_the_palette_is_written_once():
    """colors.js holds no hex copy of the palette (its other colours are not class colours)."""
    page = set(page_palette())
    colors_js = (STATIC / "js" / "colors.js").read_text().lower()
    assert page.isdisjoint(re.findall(r"#[0-9a-f]{6}", colors_js))


def test_the_map_figure_draws_classes_in_the_pages_colours(tiny_run: Path, tmp_path: Path):
    figures: list = []
    ctx = ReportContext(open_run(tiny_run), tmp_path)
    ctx.save = lambda fig, name: figures.append(fig) or name  # type: ignore[method-assign]
    figures_map.population_maps(ctx)
    page = page_palette()
    assert figures
    for fig in figures:
        handles = fig.axes[0].get_legend().legend_handles
        drawn = [to_rgba(h.get_color()) for h in handles[: ctx.n_classes]]
        assert drawn == [to_rgba(page[k % len(page)]) for k in range(ctx.n_classes)]
        sizes = handles[ctx.n_classes :]  # the loss-size markers: hollow, never a class's colour
        assert sizes and all(h.get_markerfacecolor() == "none" for h in sizes)


def test_a_grey_picture_is_drawn_as_stored_whatever_its_content():
    """0 is black and 255 white, for ink on black (MNIST) and for ink on white alike, as on the page."""
    dark = np.zeros((8, 8), np.uint8)
    dark[2:6, 3:5] = 255  # mostly black
    bright = 255 - dark  # mostly white
    fig = new_figure(2, 1)
    axes = fig.subplots(1, 2)
    for ax, image in zip(axes, (dark, bright), strict=True):
        show_image(ax, image)
        drawn = ax.images[0].to_rgba(image, bytes=True)[..., :3]
        assert np.array_equal(drawn, np.repeat(image[..., None], 3, axis=2))


def test_every_picture_in_the_report_has_one_rendering(tiny_run: Path, tmp_path: Path, monkeypatch):
    seen: list[tuple[str, float, float]] = []
    imshow = Axes.imshow

    def recording(self, X, *args, **kwargs):
        image = imshow(self, X, *args, **kwargs)
        arr = np.asarray(X)
        if arr.dtype == np.uint8 and arr.ndim == 2:  # a sample's grey picture
            seen.append((image.get_cmap().name, image.norm.vmin, image.norm.vmax))
        return image

    monkeypatch.setattr(Axes, "imshow", recording)
    build_report(tiny_run, tmp_path / "report", progress=False)
    assert len(seen) > 20  # top losses, heatmaps, neighbours, insights, the confused pair
    assert set(seen) == {("gray", 0.0, 255.0)}


def test_report_heatmaps_use_the_pages_colours():
    """The report's Grad-CAM overlay and the server's heatmap PNG colour the same value the same way."""
    from samplescope.report.draw import heatmap_cmap
    from samplescope.report.figures_errors import _overlay
    from samplescope.server.encoding import heatmap_rgba

    v = np.linspace(0.0, 1.0, 101, dtype=np.float32).reshape(1, -1)  # (1, 101), min 0 and max 1
    page = heatmap_rgba(v).astype(np.float32)  # (1, 101, 4) uint8 as the page receives it
    report = _overlay(v, heatmap_cmap()) * 255.0
    np.testing.assert_allclose(report[..., :3], page[..., :3], atol=3.0)  # 256-step colormap vs exact stops
    np.testing.assert_allclose(report[..., 3], page[..., 3], atol=1.0)

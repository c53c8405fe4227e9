"""Regenerate the task examples' images in docs/images/ (docs/integrate.md shows them):

    .venv/bin/python docs/make_task_images.py REGRESSION_RUN MULTILABEL_RUN [TABULAR_RUN [RGB_FOLDER_RUN [TOKENS_RUN
        [DATAFRAME_RUN]]]]

e.g. runs of the built-in ``diabetes``, ``mnist_pairs`` and ``breast_cancer`` integrations,
an ``image-folder:`` run of the folder docs/make_shapes_folder.py writes, a
``from_arrays`` tokens run (docs/make_tokens_run.py) and a ``from_dataframe`` run
(docs/make_table_run.py), analysed.
Pass ``-`` for a run to skip it. Serves each run, screenshots its page in Debian's chromium at 1400x900 (the
Errors tab with the task view: predicted vs true, or the per-label table; for the tabular
run the map with its highest-loss validation sample open), writes the run's report and
copies one figure of it, quantising every PNG to stay small.
"""

import sys
import tempfile
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import sync_playwright

from samplescope.report.build import build_report
from samplescope.testing import serving

OUT = Path(__file__).resolve().parent / "images"
MAX_BYTES = 150_000
#: every shown picture in view has arrived (one still loading may have no size yet: count it too)
LOADED = """() => [...document.images].filter((i) => {
    const r = i.getBoundingClientRect();
    return i.getAttribute("src") && i.offsetParent !== null && r.bottom >= 0 && r.top < innerHeight
      && r.left < innerWidth;
  }).every((i) => i.complete && i.naturalWidth > 0)"""
#: (name, the page's URL fragment, what it draws when ready, the report figure copied)
TASKS = [("errors-regression", "view=errors", "[data-testid=regression-point]", "regression.png"),
         ("errors-multilabel", "view=errors", "[data-testid=label-row]", "per_label.png"),
         ("map-breast_cancer", "view=map&method=integrated_gradients&sample={worst}",
          "[data-testid=heatmap-1] [data-testid=attr-bar]", "top_losses.png"),
         ("map-shapes", "view=map&sample={worst}", "img[data-testid=heatmap-1]", "top_losses.png"),
         ("map-tokens", "view=map&method=integrated_gradients&sample={worst}",
          "[data-testid=heatmap-1] [data-testid=attr-token]", "top_losses.png"),
         ("map-wine", "view=map&method=integrated_gradients&sample={worst}",
          "[data-testid=heatmap-1] [data-testid=attr-bar]", "top_losses.png")]


def quantise(src: Path, dest: Path) -> None:
    for colors in (128, 64, 32):
        Image.open(src).convert("RGB").quantize(colors=colors).save(dest, optimize=True)
        if dest.stat().st_size <= MAX_BYTES:
            return


def worst_validation_sample(base: str) -> int:
    rows = httpx.get(f"{base}/api/samples", params={"subset": "validation", "sort": "loss", "order": "desc",
                                                    "limit": 1}, timeout=60).json()["data"]  # fmt: skip
    return int(rows[0]["sample_id"])


def main(runs: list[str], only: tuple[str, ...] = ()) -> None:
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        for (name, fragment, ready, figure), run in zip(TASKS, runs, strict=False):
            if (only and name not in only) or run == "-":
                continue
            with serving(run) as base:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.set_default_timeout(180_000)  # the first heatmap starts the server's worker
                page.goto(f"{base}/#{fragment.format(worst=worst_validation_sample(base))}")
                page.wait_for_selector(ready)
                page.wait_for_function(LOADED)  # every picture in view arrived
                shot = Path(tmp) / f"app-{name}.png"
                page.screenshot(path=str(shot))
                quantise(shot, OUT / f"app-{name}.png")
                page.close()
            report = build_report(run, Path(tmp) / f"report-{name}", progress=False)
            dest = f"report-{figure}" if name.startswith("errors-") else f"report-{name.split('-', 1)[1]}.png"
            quantise(report / figure, OUT / dest)
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:7])

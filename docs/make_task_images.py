"""Regenerate the task examples' images in docs/images/ (docs/integrate.md shows them):

    .venv/bin/python docs/make_task_images.py REGRESSION_RUN MULTILABEL_RUN

e.g. runs of the built-in ``diabetes`` and ``mnist_pairs`` integrations, analysed. Serves
each run, screenshots the Errors tab (its task view: predicted vs true, or the per-label
table) in Debian's chromium at 1400x900, writes the run's report and copies its task
figure, quantising every PNG to stay small.
"""

import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from samplescope.report.build import build_report
from samplescope.testing import serving

OUT = Path(__file__).resolve().parent / "images"
MAX_BYTES = 120_000
LOADED = """() => [...document.images].filter((i) => {
    const r = i.getBoundingClientRect();
    return r.width > 0 && r.bottom > 0 && r.top < innerHeight && r.left < innerWidth;
  }).every((i) => i.complete && i.naturalWidth > 0)"""
#: (task, the selector the task view draws, the report figure)
TASKS = [("regression", "[data-testid=regression-point]", "regression.png"),
         ("multilabel", "[data-testid=label-row]", "per_label.png")]


def quantise(src: Path, dest: Path) -> None:
    for colors in (128, 64, 32):
        Image.open(src).convert("RGB").quantize(colors=colors).save(dest, optimize=True)
        if dest.stat().st_size <= MAX_BYTES:
            return


def main(runs: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        for (task, ready, figure), run in zip(TASKS, runs, strict=True):
            with serving(run) as base:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{base}/#view=errors")
                page.wait_for_selector(ready)
                page.wait_for_selector("[data-testid=loss-row] img")
                page.wait_for_function(LOADED)  # every picture in view arrived
                shot = Path(tmp) / f"app-{task}.png"
                page.screenshot(path=str(shot))
                quantise(shot, OUT / f"app-errors-{task}.png")
                page.close()
            report = build_report(run, Path(tmp) / f"report-{task}", progress=False)
            quantise(report / figure, OUT / f"report-{figure}")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:3])

"""Regenerate the README's images in docs/images/ from an analysed run:

    .venv/bin/python docs/make_images.py [RUN]     # RUN defaults to runs/mnist

Serves a copy of the run (serving caches heatmaps in the run folder), screenshots five
views of the app in Debian's chromium (/usr/bin/chromium, through Playwright) at 1400x900,
copies five figures of `samplescope report`, and quantises every PNG to stay small.
"""

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from playwright.sync_api import sync_playwright

import samplescope
from samplescope.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
MAX_BYTES = 120_000
REPORT_FIGURES = ["map_validation", "heatmaps", "top_losses", "loss_vs_metadata", "confused_pair"]
READY = """() => document.body.dataset.ready  // run loaded, map drawn, insights counted
    && document.querySelector('[data-testid=map]').dataset.ready
    && document.querySelector('[data-testid=insight-count]').textContent"""
LOADED = """() => [...document.images].filter((i) => {  // every picture in the viewport arrived
    const r = i.getBoundingClientRect();
    return r.width > 0 && r.bottom > 0 && r.top < innerHeight && r.left < innerWidth;
  }).every((i) => i.complete && i.naturalWidth > 0)"""
TWO_FRAMES = "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
CHARTS = ("builder-chart", "curve-loss", "curve-accuracy")
CHART_POINTS = [f"[data-testid={c}] [data-testid=chart-point]" for c in CHARTS]
#: screenshot name, URL hash (the app keeps its state there), what must be on the page first
VIEWS = [
    ("map", "size=loss", []),
    ("sample", "size=loss&sample={id}", ["[data-testid=centroid-bar]", "img.hm[src*=heatmap]"]),
    ("errors", "view=errors", ["[data-testid=loss-row]", "[data-testid=confusion-cell]"]),
    ("dashboard", "view=dashboard", CHART_POINTS),
    ("insights", "view=insights", ["[data-testid=insight-card] .thumb img"]),
]


def pick_sample(run_path: Path) -> int:
    """A misclassified validation sample nearer its predicted class's centroid than its own."""
    run = samplescope.open_run(run_path)
    run.require_analysis()
    df = run.samples()
    df = df[(df.subset == "validation") & ~df.correct.astype(bool)].reset_index(drop=True)
    dist = df[[f"dist_to_centroid_{k}" for k in range(len(run.classes))]].to_numpy()
    rows = np.arange(len(df))
    df["own"], df["pred"] = dist[rows, df.label], dist[rows, df.prediction]
    df = df[df.pred < df.own].sort_values("loss", ascending=False)
    five_as_six = df[(df.label == 5) & (df.prediction == 6)]
    s = (five_as_six if len(five_as_six) else df).iloc[0]
    label, pred = run.classes[s.label], run.classes[s.prediction]
    print(f"app-sample.png: sample {s.sample_id}, a {label} predicted as {pred}, loss {s.loss:.3g}")
    print(f"  distance to the {label}-centroid {s.own:.3f}, to the {pred}-centroid {s.pred:.3f}")
    return int(s.sample_id)


def wait_until_up(url: str, server: subprocess.Popen) -> None:
    for _ in range(240):
        if server.poll() is not None:
            raise SystemExit(f"samplescope serve exited with {server.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/api/run", timeout=2).is_success:
                return
        time.sleep(0.5)
    raise SystemExit("samplescope serve did not answer within 2 minutes")


def screenshots(url: str, sample_id: int, out: Path) -> None:
    with sync_playwright() as p:
        args = ["--headless", "--no-sandbox", "--disable-gpu"]
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=url)
        context.set_default_timeout(60_000)
        errors: list[str] = []
        context.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        context.on("weberror", lambda e: errors.append(str(e.error)))
        for name, hash_, ready in VIEWS:
            page = context.new_page()
            page.goto("/#" + hash_.format(id=sample_id))
            page.wait_for_function(READY)
            for selector in ready:
                page.wait_for_selector(selector, state="attached")
            if name == "sample":
                ring_similars(page)
            page.wait_for_function(LOADED)
            page.evaluate(TWO_FRAMES)
            if errors or page.is_visible("[data-testid=toast]"):
                raise SystemExit(f"app-{name}.png: the page shows an error: {errors}")
            page.screenshot(path=out / f"app-{name}.png")
            page.close()
        browser.close()


def ring_similars(page) -> None:
    """Fetch the sample's similars (ringed on the map); show every centroid distance."""
    page.click("[data-testid=fetch-similars]")
    page.wait_for_selector("[data-testid=map][data-highlight-count='13']", state="attached")
    last_bar = page.locator("[data-testid=centroid-bar]").last
    last_bar.evaluate("e => e.scrollIntoView({block: 'end'})")  # the drawer starts at the top


def quantise(src: Path, dest: Path) -> None:
    for colors in (128, 64, 32):
        Image.open(src).convert("RGB").quantize(colors=colors).save(dest, optimize=True)
        if dest.stat().st_size <= MAX_BYTES:
            break
    print(f"{dest.relative_to(ROOT)}: {dest.stat().st_size / 1000:.0f} KB")


def main() -> None:
    run_path = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "runs" / "mnist"
    sample_id = pick_sample(run_path)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_copy = tmp / run_path.name  # the app shows the folder's name
        shutil.copytree(run_path, run_copy)
        port = free_port()
        cmd = [sys.executable, "-m", "samplescope", "serve", str(run_copy), "--port", str(port)]
        server = subprocess.Popen(cmd)
        try:
            wait_until_up(f"http://127.0.0.1:{port}", server)
            screenshots(f"http://127.0.0.1:{port}", sample_id, tmp)
        finally:
            server.terminate()
            server.wait(timeout=30)
        report = tmp / "report"
        cmd = [sys.executable, "-m", "samplescope", "report", str(run_copy), "--out", str(report)]
        subprocess.run(cmd, check=True)
        for name in REPORT_FIGURES:
            shutil.copy(report / f"{name}.png", tmp / f"report-{name}.png")
        for png in sorted(tmp.glob("*.png")):
            quantise(png, OUT / png.name)


if __name__ == "__main__":
    main()

"""The page's hand-written WebGL scatter (static/js/scatter.js) against regl-scatterplot, in
headless Chromium. Prints figures; asserts nothing.

    python bench/scatter_libraries.py [--lib-dir DIR] [--sizes 250000,1000000]
        [--repeats 3] [--seed 0]

``--lib-dir`` (default: scatter-bench/lib in the temporary folder) holds regl-scatterplot bundled with its dependencies into one browser file
(``regl-scatterplot.bundle.js``, an esbuild IIFE that sets ``window.reglScatterplot``); this
script installs nothing: without the bundle it prints the commands that make one and exits 2.
Both files are served from a local http.server on 127.0.0.1 (nothing else is fetched);
scatter.js is served unmodified from the tree and imported as the map module imports it.

For each N in ``--sizes`` it draws N seeded points (10 Gaussian clusters in [-1, 1]^2, a
category of 10 coloured with palette.json's first 10 colours, a per-point size from 0.6 to 3
times the page's base size for that many points, as mapview.js sizes points by a numeric
column such as the loss) with each renderer, on a fresh page (1200 x 800 CSS px, DPR 1):

- scatter.js: ``new Scatter(el, {onDraw})``, ``setPositions(x, y)``, ``setStyle(order, rgba,
  sizes)`` as mapview.js's load and restyle call them; the view changed as its wheel handler
  does (``view.cx/cy/scale``, ``requestDraw()``), to the rectangle regl-scatterplot shows;
- regl-scatterplot: ``createScatterplot({canvas, pointColor, colorBy: "valueA", pointSize,
  sizeBy: "valueB"})``, ``draw({x, y, z: category, w: size})``; the view changed with
  ``zoomToLocation(target, distance)``.

The renderers are built and the data made before the clock starts; the app-side styling
(the order, rgba and size arrays scatter.js takes; the columns regl-scatterplot takes) too.
Timed, both ending at the renderer's own "drawn" signal (scatter.js's onDraw, fired in the
animation frame that issued the GL draw; regl-scatterplot's draw promise) then two more
requestAnimationFrame callbacks, so the frame has been produced:

- first frame: data handed to the renderer -> first frame drawn (regl-scatterplot's time
  includes its KDBush index, in a worker from 1,000,000 points; scatter.js's its picking grid);
- redraw: median of 20 pan/zoom steps (zoom 1 to 6.5x, the centre moving), each a view change
  -> frame drawn. "floor" is the median of 20 bare two-frame waits on the same page: no redraw
  can read below it (about two frame intervals).

``--repeats`` fresh pages per renderer and size, the renderers' order alternating between
repeats. Prints a line per page, then a table of medians per N with the ratio
regl-scatterplot / scatter.js, the 1-minute load average beside every line, and the WebGL
vendor / renderer Chromium reports (WEBGL_debug_renderer_info; headless with --disable-gpu is
SwiftShader, GL in software on the CPU, so the figures weigh vertex and fragment work as a CPU
does, not as a GPU would). Chromium is Debian's (/usr/bin/chromium, or SAMPLESCOPE_CHROMIUM)
with the flags tests/server/test_browser.py uses, plus SAMPLESCOPE_CHROMIUM_ARGS.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import ClassVar

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "samplescope" / "server" / "static"
BUNDLE = "regl-scatterplot.bundle.js"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
RENDERERS = ("scatter.js", "regl-scatterplot")
#: the versions the bundle was built with (the banner of the file records what was used)
REGL_SCATTERPLOT, ESBUILD = "1.16.0", "0.28.2"


def build_commands(lib_dir: Path) -> str:
    work = lib_dir.parent
    return "\n".join([
        f"mkdir -p {work} && cd {work} && npm init -y",
        f"npm install --save-exact regl-scatterplot@{REGL_SCATTERPLOT} esbuild@{ESBUILD}",
        (
            "./node_modules/.bin/esbuild node_modules/regl-scatterplot/dist/regl-scatterplot.esm.js"
            " --bundle --format=iife --global-name=reglScatterplot --minify --legal-comments=eof"
            f" --banner:js='/* regl-scatterplot {REGL_SCATTERPLOT}, esbuild {ESBUILD} */'"
            f" --outfile={lib_dir / BUNDLE}"
        ),
    ])  # fmt: skip


#: JavaScript both pages share: seeded data, frame waits, the views, the WebGL strings
COMMON_JS = r"""
function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function makeData(n, seed) {
  const r = mulberry32(seed), cx = [], cy = [];
  for (let c = 0; c < 10; c++) { cx.push(r() * 1.4 - 0.7); cy.push(r() * 1.4 - 0.7); }
  const x = new Float32Array(n), y = new Float32Array(n), cat = new Float32Array(n);
  const t = new Float32Array(n);
  const clamp = (v) => Math.min(0.999, Math.max(-0.999, v));
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r() * 10), g = Math.sqrt(-2 * Math.log(Math.max(1e-12, r()))), a = 6.2832 * r();
    x[i] = clamp(cx[c] + 0.14 * g * Math.cos(a)); y[i] = clamp(cy[c] + 0.14 * g * Math.sin(a));
    cat[i] = c;
    t[i] = r() * r() * 0.9999; // loss-like: most points small, a few large
  }
  return { x, y, cat, t };
}
// the page's base point size for n shown points (mapview.js sizes()), x 0.6 .. 3 by t
const baseSize = (n) => (n > 40000 ? 2.6 : n > 10000 ? 3.6 : n > 1500 ? 5 : 7);
const frame = () => new Promise((r) => requestAnimationFrame(r));
const twoFrames = async () => { await frame(); await frame(); };
const median = (a) => { const s = [...a].sort((p, q) => p - q), m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
async function frameFloor() {
  const ts = [];
  for (let k = 0; k < 20; k++) { const t = performance.now(); await twoFrames(); ts.push(performance.now() - t); }
  return median(ts);
}
// 20 pan/zoom steps: zoom (1: [-1, 1] fills the height) and the centre, in data units
const VIEWS = Array.from({ length: 20 }, (_, k) => ({
  zoom: [1, 1.6, 2.6, 4, 6.5][k % 5], dx: 0.3 * Math.sin(k + 1), dy: 0.3 * Math.cos(0.7 * (k + 1)),
}));
function glInfo() {
  const gl = document.createElement("canvas").getContext("webgl");
  if (!gl) return "no WebGL";
  const ext = gl.getExtension("WEBGL_debug_renderer_info");
  if (!ext) return `${gl.getParameter(gl.VENDOR)} / ${gl.getParameter(gl.RENDERER)}`;
  return `${gl.getParameter(ext.UNMASKED_VENDOR_WEBGL)} / ${gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)}`;
}
const hexRgb = (h) => { const v = parseInt(h.slice(1), 16); return [(v >> 16) & 255, (v >> 8) & 255, v & 255]; };
"""

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{name}</title><link rel="icon" href="data:,">
<style>html,body{{margin:0}} #map{{position:relative;width:1200px;height:800px}}
#map canvas{{display:block;width:100%;height:100%}} #map svg{{position:absolute;inset:0}}</style>
</head><body><div id="map"></div>
<script>{common}</script>
{body}
</body></html>"""

SCATTER_BODY = """<script type="module">
import { Scatter } from "/static/js/scatter.js";
window.bench = async (n, seed, palette) => {
  const d = makeData(n, seed), el = document.getElementById("map");
  let onDrawn = null;
  const s = new Scatter(el, { onDraw: () => { const f = onDrawn; onDrawn = null; if (f) f(); } });
  const drawn = () => new Promise((r) => { onDrawn = r; });
  // what mapview.js's restyle hands over: draw order, rgba per point, size per point (CSS px)
  const colors = palette.map(hexRgb), base = baseSize(n);
  const order = new Uint32Array(n), rgba = new Uint8Array(4 * n), sizes = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const c = colors[d.cat[i]];
    order[i] = i; rgba[4 * i] = c[0]; rgba[4 * i + 1] = c[1]; rgba[4 * i + 2] = c[2]; rgba[4 * i + 3] = 255;
    sizes[i] = base * (0.6 + 2.4 * d.t[i]);
  }
  await twoFrames(); // the ResizeObserver's first call is behind us
  const t0 = performance.now(), first = drawn();
  s.setPositions(d.x, d.y);
  s.setStyle(order, rgba, sizes);
  await first; await twoFrames();
  const firstMs = performance.now() - t0;
  const redraws = [];
  for (const v of VIEWS) {
    const t = performance.now(), next = drawn();
    // the view regl-scatterplot's zoomToLocation([dx, dy], 1 / zoom) shows: [-1, 1] tall at zoom 1
    s.view.scale = (s.height / 2) * v.zoom; s.view.cx = v.dx; s.view.cy = v.dy;
    s.moved = true; s.requestDraw();
    await next; await twoFrames();
    redraws.push(performance.now() - t);
  }
  return { kind: s.kind, first: firstMs, redraws, floor: await frameFloor(), gl: glInfo() };
};
window.benchReady = true;
</script>"""

REGL_BODY = """<script src="/lib/regl-scatterplot.bundle.js"></script>
<script>
window.bench = async (n, seed, palette) => {
  const d = makeData(n, seed), el = document.getElementById("map");
  const canvas = document.createElement("canvas");
  el.appendChild(canvas);
  const base = baseSize(n), steps = 16;  // sizes 0.6 .. 3 x base, w (0..1) picks one of 16
  const pointSize = Array.from({ length: steps }, (_, k) => base * (0.6 + 2.4 * k / (steps - 1)));
  const createScatterplot = window.reglScatterplot.default;
  const sp = createScatterplot({
    canvas, width: "auto", height: "auto", pointColor: palette, colorBy: "valueA",
    pointSize, sizeBy: "valueB", opacity: 1,
  });
  const supported = sp.isSupported;
  await twoFrames();
  const t0 = performance.now();
  await sp.draw({ x: d.x, y: d.y, z: d.cat, w: d.t }, { zDataType: "categorical", wDataType: "continuous" });
  await twoFrames();
  const firstMs = performance.now() - t0;
  const redraws = [];
  for (const v of VIEWS) {
    const t = performance.now();
    await sp.zoomToLocation([v.dx, v.dy], 1 / v.zoom);
    await twoFrames();
    redraws.push(performance.now() - t);
  }
  return { kind: supported ? "webgl" : "webgl (extensions missing)", first: firstMs, redraws,
           floor: await frameFloor(), gl: glInfo() };
};
window.benchReady = true;
</script>"""


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """/static/... from the tree, /lib/... from --lib-dir, /<renderer>.html from PAGES."""

    pages: ClassVar[dict[str, bytes]] = {}
    lib_dir: ClassVar[Path] = Path()

    def log_message(self, *args) -> None:  # quiet
        pass

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        if path.startswith("/lib/"):
            return str(self.lib_dir / Path(path[5:]).name)
        if path.startswith("/static/"):
            return str(STATIC / path[len("/static/") :])
        return str(Path("/nonexistent") / Path(path).name)

    def do_GET(self) -> None:
        page = self.pages.get(self.path.split("?", 1)[0].lstrip("/"))
        if page is None:
            return super().do_GET()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)


def _serve(lib_dir: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    bodies = {"scatter.js": SCATTER_BODY, "regl-scatterplot": REGL_BODY}
    pages = {
        f"{name}.html": PAGE.format(name=name, common=COMMON_JS, body=body).encode()
        for name, body in bodies.items()
    }
    handler = type("Handler", (_Handler,), {"pages": pages, "lib_dir": lib_dir})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _one(browser, base: str, name: str, n: int, seed: int, palette: list[str]) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    try:
        page.goto(f"{base}/{name}.html")
        page.wait_for_function("window.benchReady === true", timeout=60_000)
        r = page.evaluate("([n, seed, p]) => window.bench(n, seed, p)", [n, seed, palette])
    finally:
        context.close()
    r["errors"] = errors
    r["redraw"] = statistics.median(r["redraws"])
    r["load"] = os.getloadavg()[0]
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lib-dir", type=Path, default=Path(tempfile.gettempdir()) / "scatter-bench" / "lib")
    p.add_argument("--sizes", default="250000,1000000")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    lib_dir = args.lib_dir.resolve()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    bundle = lib_dir / BUNDLE
    if not bundle.is_file():
        print(f"no {BUNDLE} in {lib_dir}; make it with:\n\n{build_commands(lib_dir)}\n")
        sys.exit(2)
    banner = bundle.read_text(errors="replace")[:200].split("\n", 1)[0]
    path = os.environ.get("SAMPLESCOPE_CHROMIUM") or "/usr/bin/chromium"
    if not Path(path).exists():
        print(f"no chromium at {path} (set SAMPLESCOPE_CHROMIUM)")
        sys.exit(2)
    palette = json.loads((STATIC / "palette.json").read_text())["categorical"][:10]

    from playwright.sync_api import sync_playwright

    server, base = _serve(lib_dir)
    found: dict[tuple[str, int], list[dict]] = {}
    extra = os.environ.get("SAMPLESCOPE_CHROMIUM_ARGS", "").split()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS + extra)
            print(f"chromium {browser.version}; bundle: {banner}; seed {args.seed}; {_load()}")
            gl = ""
            for rep in range(args.repeats):
                for n in sizes:
                    order = RENDERERS if rep % 2 == 0 else RENDERERS[::-1]
                    for name in order:
                        r = _one(browser, base, name, n, args.seed, palette)
                        found.setdefault((name, n), []).append(r)
                        if r["gl"] != gl:
                            gl = r["gl"]
                            print(f"WebGL: {gl}")
                        note = f"  errors: {r['errors'][:3]}" if r["errors"] else ""
                        print(f"repeat {rep + 1} {name:16s} N={n:>9,}  {r['kind']:8s} first frame "
                              f"{r['first']:8.1f} ms  redraw {r['redraw']:7.1f} ms (floor "
                              f"{r['floor']:.1f})  load {r['load']:.2f}{note}", flush=True)  # fmt: skip
            browser.close()
    finally:
        server.shutdown()

    print(f"\nmedians of {args.repeats} pages; redraw: median of 20 pan/zoom steps per page")
    print(
        f"{'':18s} {'N':>9s}  {'first frame ms':>14s}  {'redraw ms':>9s}  {'floor ms':>8s}  load 1m"
    )
    for n in sizes:
        med = {}
        for name in RENDERERS:
            rs = found[(name, n)]
            med[name] = {
                k: statistics.median(r[k] for r in rs) for k in ("first", "redraw", "floor")
            }
            loads = statistics.mean(r["load"] for r in rs)
            m = med[name]
            print(f"{name:18s} {n:>9,}  {m['first']:14.1f}  {m['redraw']:9.1f}  {m['floor']:8.1f}  "
                  f"{loads:.2f}")  # fmt: skip
        a, b = med["regl-scatterplot"], med["scatter.js"]
        print(f"{'regl / scatter.js':18s} {n:>9,}  {a['first'] / b['first']:13.2f}x  "
              f"{a['redraw'] / b['redraw']:8.2f}x  {'':8s}  {_load()}")  # fmt: skip
    print(f"WebGL vendor / renderer: {gl}")


if __name__ == "__main__":
    main()

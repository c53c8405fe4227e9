// A small SVG chart: series of points joined by lines, nice axes, a legend.
// Every point is a <circle data-testid="chart-point"> so tests can count them.

import { categoryColor } from "./colors.js";

const NS = "http://www.w3.org/2000/svg";

function node(name, attrs = {}, parent) {
  const el = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

export function niceTicks(lo, hi, count = 5) {
  if (!isFinite(lo) || !isFinite(hi)) return [];
  if (lo === hi) { lo -= 1; hi += 1; }
  const step0 = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

export const fmt = (v) => {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
  return String(+v.toPrecision(a >= 100 ? 4 : 3));
};

/**
 * series: [{name, color?, points: [{x, y, tip?}]}]
 * options: {xLabel, yLabel, categories?: string[] (x is an index into it), lines?: bool, yMin?}
 */
export function chart(el, series, options = {}) {
  el.innerHTML = "";
  const points = series.flatMap((s) => s.points).filter((p) => p.y !== null && isFinite(p.y));
  if (!points.length) {
    el.innerHTML = `<div class="empty">${options.empty || "Nothing to show"}</div>`;
    return;
  }
  const width = Math.max(320, el.clientWidth || 600), height = options.height || 260;
  const m = { l: 52, r: 16, t: options.title ? 26 : 12, b: 40 };
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" }, el);
  const cats = options.categories;
  let x0, x1;
  if (cats) { x0 = -0.5; x1 = cats.length - 0.5; } else {
    x0 = Math.min(...points.map((p) => p.x)); x1 = Math.max(...points.map((p) => p.x));
    if (x0 === x1) { x0 -= 1; x1 += 1; }
  }
  let y0 = Math.min(...points.map((p) => p.y)), y1 = Math.max(...points.map((p) => p.y));
  if (options.yMin !== undefined) y0 = Math.min(y0, options.yMin);
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const yt = niceTicks(y0, y1, 5);
  y0 = Math.min(y0, yt[0]); y1 = Math.max(y1, yt[yt.length - 1]);
  const sx = (v) => m.l + ((v - x0) / (x1 - x0)) * (width - m.l - m.r);
  const sy = (v) => height - m.b - ((v - y0) / (y1 - y0)) * (height - m.t - m.b);

  if (options.title) node("text", { x: m.l, y: 16, class: "title" }, svg).textContent = options.title;
  const grid = node("g", { class: "grid" }, svg), axis = node("g", { class: "axis" }, svg);
  for (const v of yt) {
    node("line", { x1: m.l, x2: width - m.r, y1: sy(v), y2: sy(v) }, grid);
    node("text", { x: m.l - 6, y: sy(v) + 4, "text-anchor": "end" }, axis).textContent = fmt(v);
  }
  const xt = cats ? cats.map((_, i) => i) : niceTicks(x0, x1, Math.max(2, Math.floor((width - 80) / 80)));
  const every = cats ? Math.max(1, Math.ceil(cats.length / ((width - 80) / 40))) : 1;
  xt.forEach((v, k) => {
    if (k % every) return;
    node("line", { x1: sx(v), x2: sx(v), y1: height - m.b, y2: height - m.b + 4 }, axis);
    node("text", { x: sx(v), y: height - m.b + 16, "text-anchor": "middle" }, axis).textContent = cats ? cats[v] : fmt(v);
  });
  node("line", { x1: m.l, x2: width - m.r, y1: height - m.b, y2: height - m.b }, axis);
  if (options.xLabel) node("text", { x: (m.l + width - m.r) / 2, y: height - 6, "text-anchor": "middle" }, axis).textContent = options.xLabel;
  if (options.yLabel) {
    node("text", { x: 12, y: (m.t + height - m.b) / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${(m.t + height - m.b) / 2})` }, axis).textContent = options.yLabel;
  }

  series.forEach((s, k) => {
    const color = s.color || categoryColor(k);
    const pts = s.points.filter((p) => p.y !== null && isFinite(p.y));
    const g = node("g", { "data-series": s.name }, svg);
    if (options.lines !== false && pts.length > 1) {
      const sorted = [...pts].sort((a, b) => a.x - b.x);
      node("polyline", {
        points: sorted.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" "),
        fill: "none", stroke: color, "stroke-width": 1.8, "stroke-linejoin": "round", opacity: 0.85,
      }, g);
    }
    for (const p of pts) {
      const c = node("circle", {
        cx: sx(p.x), cy: sy(p.y), r: options.radius || 3.5, fill: color, stroke: "#fff", "stroke-width": 1,
        "data-testid": "chart-point", "data-x": p.x, "data-y": p.y,
      }, g);
      node("title", {}, c).textContent = p.tip || `${s.name}: ${fmt(p.y)}`;
    }
  });

  if (series.length > 1 || options.legend) {
    const lg = node("g", { "data-testid": "chart-legend" }, svg);
    let x = width - m.r;
    [...series].reverse().forEach((s, rk) => {
      const k = series.length - 1 - rk;
      const label = node("text", { y: 12, "text-anchor": "end" }, lg);
      label.textContent = s.name;
      const w = s.name.length * 6.2 + 4;
      label.setAttribute("x", x);
      node("circle", { cx: x - w - 6, cy: 8, r: 4, fill: s.color || categoryColor(k) }, lg);
      x -= w + 20;
    });
  }
}

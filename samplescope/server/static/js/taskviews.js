// What a run's task changes on the page (samplescope/tasks): how a label and a prediction
// read, which outputs a heatmap may explain, and the task's own view in the Errors tab:
// classification keeps its confusion matrix (errors.js); regression gets predicted vs true
// and the residual histogram; multi-label a per-label table.

import { getJSON } from "./api.js";
import { fmt } from "./charts.js";
import { el, esc } from "./dom.js";
import { update } from "./state.js";

const NS = "http://www.w3.org/2000/svg";
const BLUE = "#4e79a7", RED = "#d62728";

export const taskName = (ctx) => ctx.run.task?.name ?? "classification";
export const hasConfusion = (ctx) => (ctx.run.task?.views ?? ["confusion"]).includes("confusion");

/** A label or prediction as people read it: a class name, a number, or a set such as "3+7". */
export function valueText(ctx, value) {
  if (value === null || value === undefined) return "–";
  const task = taskName(ctx);
  if (task === "regression") return fmt(value);
  if (task === "multilabel") return String(value);
  return ctx.classes[value] ?? String(value);
}

/** Whether a row is an error under the task's definition (the `correct` column). */
export const isError = (row) => (row.correct === undefined ? row.label !== row.prediction : !row.correct);

/** What "wrong" is called: misclassified, a large error, a wrong label set. */
export function errorWord(ctx) {
  return { regression: "large error", multilabel: "wrong labels" }[taskName(ctx)] ?? "misclassified";
}

/** The outputs a heatmap may explain: [[index, name]] (regression: its one output). */
export function heatmapTargets(ctx, row) {
  const task = taskName(ctx);
  if (task === "regression") return [["0", `predicted ${ctx.run.task.target || "value"}`]];
  return ctx.classes.map((c, i) => {
    const truth = task === "multilabel" ? row[`label_${i}`] : row.label === i;
    const pred = task === "multilabel" ? row[`pred_${i}`] : row.prediction === i;
    return [String(i), `${c}${pred ? " (predicted)" : ""}${truth ? " (truth)" : ""}`];
  });
}

/** The default heatmap targets: [first, second] (predicted, then truth). */
export function defaultTargets(ctx, row) {
  const task = taskName(ctx);
  if (task === "regression") return ["0", "0"];
  if (task === "multilabel") {
    const probs = ctx.classes.map((_, i) => row[`prob_${i}`] ?? 0);
    const best = probs.indexOf(Math.max(...probs));
    const truth = ctx.classes.findIndex((_, i) => row[`label_${i}`]);
    return [String(best), String(truth >= 0 ? truth : best)];
  }
  return [String(row.prediction), String(row.label ?? row.prediction)];
}

/** The task view of one subset into `box`; `line` gets the headline figures. */
export async function renderTaskView(ctx, box, line, subset) {
  const metrics = await getJSON(`/api/metrics?subset=${encodeURIComponent(subset)}`);
  line.textContent = `${subset}: ` + metrics.headline.map(({ name, value }) => `${name} ${fmt(value)}`).join(" · ");
  if (taskName(ctx) === "regression") return regressionView(ctx, box, subset, metrics);
  return perLabelView(ctx, box, metrics);
}

// --------------------------------------------------------------------------- regression

async function regressionView(ctx, box, subset, metrics) {
  // the subset's samples, highest loss first (at most 1000: the scatter stays readable)
  const p = new URLSearchParams({ subset, sort: "loss", order: "desc", limit: 1000, columns: "label,prediction,correct" });
  const res = await getJSON(`/api/samples?${p}`);
  const rows = res.data.filter((r) => r.label !== null && r.prediction !== null);
  const threshold = ctx.run.info?.analysis?.error?.threshold;
  const target = ctx.run.task.target || "target";
  const wrap = el(`<div class="task-view" data-testid="regression-view"></div>`);
  wrap.append(scatter(rows, threshold, target), histogram(rows.map((r) => r.prediction - r.label), threshold, target));
  const s = metrics.summary;
  const shown = rows.length < res.count ? ` (the ${rows.length} highest-loss of ${res.count})` : "";
  wrap.append(el(`<p class="hint" data-testid="regression-summary">MAE ${fmt(s.mae)} · RMSE ${fmt(s.rmse)} · R² ${fmt(s.r2)} ·
    residual quartiles ${fmt(s["residual_q0.25"])} / ${fmt(s["residual_q0.5"])} / ${fmt(s["residual_q0.75"])}${shown}.
    ${esc(ctx.run.task.error ? `An error is ${ctx.run.task.error}.` : "")} Click a point to open the sample.</p>`));
  box.replaceChildren(wrap);
}

function svg(width, height) {
  const s = document.createElementNS(NS, "svg");
  s.setAttribute("viewBox", `0 0 ${width} ${height}`);
  s.setAttribute("width", width); s.setAttribute("height", height);
  return s;
}

function add(parent, name, attrs, text) {
  const n = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  parent.append(n);
  return n;
}

function axes(s, W, H, m, sx, sy, [x0, x1], [y0, y1], xLabel, yLabel) {
  add(s, "line", { x1: m.l, y1: H - m.b, x2: W - m.r, y2: H - m.b, stroke: "#999" });
  add(s, "line", { x1: m.l, y1: m.t, x2: m.l, y2: H - m.b, stroke: "#999" });
  for (const t of [x0, (x0 + x1) / 2, x1]) add(s, "text", { x: sx(t), y: H - m.b + 14, "text-anchor": "middle", "font-size": 10 }, fmt(t));
  for (const t of [y0, (y0 + y1) / 2, y1]) add(s, "text", { x: m.l - 4, y: sy(t) + 3, "text-anchor": "end", "font-size": 10 }, fmt(t));
  add(s, "text", { x: (m.l + W - m.r) / 2, y: H - 4, "text-anchor": "middle", "font-size": 11 }, xLabel);
  add(s, "text", { x: 12, y: (m.t + H - m.b) / 2, "text-anchor": "middle", "font-size": 11, transform: `rotate(-90 12 ${(m.t + H - m.b) / 2})` }, yLabel);
}

function scatter(rows, threshold, target) {
  const W = 380, H = 320, m = { l: 52, r: 24, t: 12, b: 38 };
  const s = svg(W, H);
  s.dataset.testid = "pred-vs-true";
  if (!rows.length) return s;
  const values = rows.flatMap((r) => [r.label, r.prediction]);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (lo === hi) { lo -= 1; hi += 1; }
  const sx = (v) => m.l + ((v - lo) / (hi - lo)) * (W - m.l - m.r);
  const sy = (v) => H - m.b - ((v - lo) / (hi - lo)) * (H - m.t - m.b);
  axes(s, W, H, m, sx, sy, [lo, hi], [lo, hi], `true ${target}`, `predicted ${target}`);
  add(s, "line", { x1: sx(lo), y1: sy(lo), x2: sx(hi), y2: sy(hi), stroke: "#333" });
  if (threshold) {  // prediction = truth ± threshold, the part inside the plot
    for (const d of [-threshold, threshold]) {
      const a = Math.max(lo, lo - d), b = Math.min(hi, hi - d);
      if (a < b) add(s, "line", { x1: sx(a), y1: sy(a + d), x2: sx(b), y2: sy(b + d), stroke: "#bbb", "stroke-dasharray": "4 3" });
    }
  }
  for (const r of [...rows].reverse()) {  // the highest losses drawn last, on top
    const c = add(s, "circle", { cx: sx(r.label), cy: sy(r.prediction), r: r.correct ? 3 : 4,
      fill: r.correct ? BLUE : RED, "fill-opacity": 0.75, "data-testid": "regression-point", "data-sample-id": r.sample_id });
    add(c, "title", {}, `#${r.sample_id}: true ${fmt(r.label)}, predicted ${fmt(r.prediction)}`);
    c.style.cursor = "pointer";
    c.addEventListener("click", () => update({ sample: String(r.sample_id) }, { push: true }));
  }
  return s;
}

function histogram(residuals, threshold, target) {
  const W = 340, H = 320, m = { l: 44, r: 24, t: 12, b: 38 };
  const s = svg(W, H);
  s.dataset.testid = "residual-histogram";
  if (!residuals.length) return s;
  let lo = Math.min(...residuals, threshold ? -threshold : 0), hi = Math.max(...residuals, threshold || 0);
  if (lo === hi) { lo -= 1; hi += 1; }
  const n = Math.min(30, Math.max(8, Math.round(Math.sqrt(residuals.length) * 2)));
  const counts = new Array(n).fill(0);
  for (const v of residuals) counts[Math.min(n - 1, Math.floor(((v - lo) / (hi - lo)) * n))] += 1;
  const top = Math.max(...counts);
  const sx = (v) => m.l + ((v - lo) / (hi - lo)) * (W - m.l - m.r);
  const sy = (v) => H - m.b - (v / top) * (H - m.t - m.b);
  axes(s, W, H, m, sx, sy, [lo, hi], [0, top], `residual (predicted − true ${target})`, "samples");
  const w = (W - m.l - m.r) / n;
  counts.forEach((c, i) => add(s, "rect", { x: m.l + i * w + 0.5, y: sy(c), width: Math.max(1, w - 1), height: H - m.b - sy(c),
    fill: BLUE, "data-testid": "residual-bar" }));
  if (threshold) {
    for (const d of [-threshold, threshold]) add(s, "line", { x1: sx(d), y1: m.t, x2: sx(d), y2: H - m.b, stroke: RED, "stroke-dasharray": "4 3" });
  }
  return s;
}

// --------------------------------------------------------------------------- multi-label

function perLabelView(ctx, box, metrics) {
  const s = metrics.summary;
  const rows = metrics.per_label.map((r) => `<tr data-testid="label-row" data-class="${r.class}" title="list the samples with label ${esc(r.name)}">
    <th>${esc(r.name)}</th><td>${r.support}</td><td>${r.predicted}</td><td>${fmt(r.precision)}</td><td>${fmt(r.recall)}</td>
    <td>${fmt(r.f1)}</td><td>${fmt(r.average_precision)}</td></tr>`).join("");
  const wrap = el(`<div class="task-view" data-testid="per-label-view"><table class="samples per-label" data-testid="per-label-table">
    <thead><tr><th>label</th><th>with it</th><th>predicted</th><th>precision</th><th>recall</th><th>F1</th><th>AP</th></tr></thead>
    <tbody>${rows}</tbody></table>
    <p class="hint">Exact match (every label right) ${fmt(s.exact_match)} · label accuracy ${fmt(s.label_accuracy)} ·
    micro F1 ${fmt(s.micro_f1)} · macro F1 ${fmt(s.macro_f1)} · mean AP ${fmt(s.mean_average_precision)}. Click a label to list its samples.</p></div>`);
  wrap.querySelectorAll("[data-testid=label-row]").forEach((tr) => {
    tr.onclick = () => update({ tlabel: tr.dataset.class, tpred: "", terr: "0", tpage: "0" });
  });
  box.replaceChildren(wrap);
}

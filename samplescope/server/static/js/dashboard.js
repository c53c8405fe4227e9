// d. Dashboard: a chart builder over /api/aggregate and the training curves.

import { getJSON } from "./api.js";
import { chart, fmt } from "./charts.js";
import { state, update } from "./state.js";
import { options } from "./dom.js";

const PRESET = { x: "dist_to_gt_centroid", y: "loss", by: "", dsubset: "all", bins: "10" };
const SKIP_X = new Set(["sample_id", "key", "index"]);
const Y_NAMES = { loss: "mean loss", accuracy: "accuracy", count: "count" };

export class DashboardView {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.q = (t) => root.querySelector(`[data-testid=${t}]`);
  }

  init() {
    const kinds = this.ctx.kinds;
    const cols = Object.keys(kinds).filter((c) => !SKIP_X.has(c));
    const numeric = cols.filter((c) => kinds[c] === "numeric" && c !== "loss");
    const groups = cols.filter((c) => kinds[c] !== "numeric" && c !== "key");
    this.fallbackX = numeric[0] || cols[0];
    options(this.q("chart-x"), cols, this.x());
    options(this.q("chart-y"), [["loss", "mean loss"], ["accuracy", "accuracy"], ["count", "count"],
      ...numeric.map((c) => [c, `mean ${c}`])], state.y);
    options(this.q("chart-by"), [["", "nothing"], ...groups], state.by);
    options(this.q("chart-subset"), [["all", "all subsets"], ...this.ctx.run.subsets.map((s) => s.name)], state.dsubset);
    const bins = this.q("chart-bins");
    bins.value = state.bins;
    for (const s of this.root.querySelectorAll("[data-key]")) s.onchange = () => update({ [s.dataset.key]: s.value });
    const preset = this.q("preset-centroid");
    preset.onclick = () => update(PRESET);
    preset.hidden = !kinds[PRESET.x];  // only integrations that compute class centroids (MNIST's) have the column
    this.root.querySelectorAll("[data-hx]").forEach((b) => { b.onclick = () => update({ hx: b.dataset.hx }); });
    this.ready = true;
    this.renderBuilder();
    this.renderCurves();
  }

  onState(changed) {
    if (!this.ready) return;
    for (const s of this.root.querySelectorAll("[data-key]")) s.value = s.dataset.key === "x" ? this.x() : state[s.dataset.key];
    if (["x", "y", "by", "dsubset", "bins"].some((k) => changed.has(k))) this.renderBuilder();
    if (changed.has("hx")) this.renderCurves();
  }

  async renderBuilder() {
    const box = this.q("builder-chart");
    const { y, by, dsubset, bins } = state;
    const x = this.x();
    const p = new URLSearchParams({ x, y, bins });
    if (by) p.set("by", by);
    if (dsubset !== "all") p.set("subset", dsubset);
    box.dataset.loading = "1";
    let res;
    try { res = await getJSON(`/api/aggregate?${p}`); } catch (err) {
      box.innerHTML = `<div class="empty">${err.message}</div>`; delete box.dataset.loading; return;
    }
    if (x !== this.x() || y !== state.y || by !== state.by || bins !== state.bins || dsubset !== state.dsubset) return;
    const numeric = res.kind === "numeric";
    const valueOf = (r) => (y === "count" ? r.count : r.mean);
    let categories;
    if (!numeric) {
      const seen = new Map();
      for (const r of res.data) {
        const key = String(r.x_value);
        if (!seen.has(key)) seen.set(key, r.x_value_name ?? key);
      }
      categories = [...seen.keys()];
      this.catNames = [...seen.values()];
    }
    const groups = new Map();
    for (const r of res.data) {
      const key = by ? String(r[`${by}_name`] ?? r[by]) : (Y_NAMES[y] || `mean ${y}`);
      if (!groups.has(key)) groups.set(key, []);
      const xv = numeric ? r.x_mid : categories.indexOf(String(r.x_value));
      const range = numeric ? `${fmt(r.x_lo)} – ${fmt(r.x_hi)}` : (r.x_value_name ?? r.x_value);
      groups.get(key).push({ x: xv, y: valueOf(r), tip: `${key} · ${x} ${range}: ${fmt(valueOf(r))} (n=${r.count})` });
    }
    const series = [...groups].map(([name, points]) => ({ name, points }));
    chart(box, series, {
      xLabel: numeric ? x : x, yLabel: Y_NAMES[y] || `mean ${y}`, categories: numeric ? undefined : this.catNames,
      lines: numeric, legend: !!by, yMin: y === "count" || y === "accuracy" ? 0 : undefined,
    });
    box.dataset.bins = String(res.data.length);
    delete box.dataset.loading;
  }

  /** The x column: the one in the URL, or a numeric column when this run has no such column. */
  x() { return this.ctx.kinds[state.x] ? state.x : this.fallbackX; }

  async renderCurves() {
    const hx = state.hx;
    this.root.querySelectorAll("[data-hx]").forEach((b) => b.classList.toggle("active", b.dataset.hx === hx));
    const res = await getJSON("/api/history");
    const rows = res.data;
    const epochs = rows.filter((r) => r.kind === "epoch");
    const steps = rows.filter((r) => r.kind === "step");
    const pick = (list, key) => list.filter((r) => r[key] !== null && r[key] !== undefined)
      .map((r) => ({ x: r[hx], y: r[key], tip: `${key} @ ${hx} ${r[hx]}: ${fmt(r[key])}` }));
    const train = hx === "step" && steps.length ? steps : epochs;
    const lossSeries = [
      { name: "train", color: "#4e79a7", points: pick(train, "train_loss") },
      { name: "validation", color: "#f28e2b", points: pick(epochs, "val_loss") },
    ];
    const accSeries = [
      { name: "train", color: "#4e79a7", points: pick(train, "train_acc") },
      { name: "validation", color: "#f28e2b", points: pick(epochs, "val_acc") },
    ];
    const radius = hx === "step" ? 2 : 3.5;
    chart(this.q("curve-loss"), lossSeries, { title: "Loss", xLabel: hx, legend: true, radius, empty: "No training history" });
    // the history's *_acc is the task's accuracy-like score (samplescope/tasks)
    const score = { regression: "1 − MSE (standardised targets)", multilabel: "Exact match" }[this.ctx.run.task?.name] ?? "Accuracy";
    chart(this.q("curve-accuracy"), accSeries, { title: score, xLabel: hx, legend: true, radius, empty: "No training history" });
  }
}

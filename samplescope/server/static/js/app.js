// The page: loads the run summary and the map payload in parallel, then wires the views.
// Every view reads and writes the shared state in the URL hash (state.js).

import { fetchMap, getJSON, setImagesOn } from "./api.js";
import { state, subscribe, update } from "./state.js";
import { MapView } from "./mapview.js";
import { SampleView } from "./sample.js";
import { ErrorsView } from "./errors.js";
import { DashboardView } from "./dashboard.js";
import { InsightsView } from "./insights.js";
import { Tags } from "./tags.js";
import { CompareView, loadComparison } from "./compare.js";
import { options } from "./dom.js";

// Start both downloads before anything else.
const runPromise = getJSON("/api/run");
const mapPromise = fetchMap({});

const $ = (sel) => document.querySelector(sel);
const toast = (message) => {
  const t = $("[data-testid=toast]");
  t.textContent = message; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
};
window.addEventListener("unhandledrejection", (e) => { toast(String(e.reason?.message || e.reason)); e.preventDefault(); });

async function main() {
  const run = await runPromise;
  document.body.dataset.inputKind = run.input_kind || "image";  // pictures of vectors and text are not pixel art
  setImagesOn((run.trust?.inputs ?? true) && !run.pictures);
  trustNotice(run.trust, run.pictures);
  const ctx = {
    run,
    classes: run.classes,
    kinds: Object.fromEntries(run.columns.map((c) => [c.name, c.kind])),
    classColumns: new Set(run.class_columns ?? []),
    insightById: null,
  };
  let insightsPromise = null;
  ctx.insights = () => (insightsPromise ??= getJSON("/api/insights").then((r) => {
    ctx.insightById = new Map(r.data.map((c) => [c.id, c]));
    return r.data;
  }));
  ctx.insight = async (id) => { await ctx.insights(); return ctx.insightById.get(id); };

  header(run);
  mapControls(ctx);
  const views = {
    map: (ctx.map = new MapView(ctx, $("section[data-view=map]"))),
    errors: new ErrorsView(ctx, $("section[data-view=errors]")),
    dashboard: new DashboardView(ctx, $("section[data-view=dashboard]")),
    insights: new InsightsView(ctx, $("section[data-view=insights]")),
  };
  const sample = new SampleView(ctx, $("[data-testid=sample-view]"));
  ctx.tags = new Tags(ctx, $("[data-testid=tags-panel]"), toast);
  const comparing = loadComparison(); // null unless served with --compare RUN_A
  const show = () => {
    const name = views[state.view] ? state.view : "map";
    for (const s of document.querySelectorAll("section.view")) s.hidden = s.dataset.view !== name;
    for (const a of document.querySelectorAll(".tabs a")) a.classList.toggle("active", a.dataset.view === name);
    if (name !== "map" && !views[name].ready && !views[name].starting) { views[name].starting = true; views[name].init(); }
    document.body.dataset.view = name;
  };
  subscribe((changed) => {
    // the drawer belongs to the view it was opened in: another view closes it
    if (changed.has("view") && !changed.has("sample") && state.sample !== "") {
      update({ sample: "" }); // notifies every listener of the closed drawer first
    }
    if (changed.has("view")) show();
    syncControls();
    for (const v of Object.values(views)) v.onState(changed);
    sample.onState(changed);
  });
  for (const a of document.querySelectorAll(".tabs a")) {
    a.onclick = (e) => { e.preventDefault(); update({ view: a.dataset.view }, { push: true }); };
  }
  document.addEventListener("keydown", (e) => {
    const typing = e.target.closest?.("input:not([type=range]):not([type=checkbox]), select, textarea");
    if (e.key === "Escape" && state.sample !== "" && !typing) {
      update({ sample: "" }, { push: true });
    }
  });
  show();
  // For tests and the console: where a sample is drawn, and which samples are drawn.
  window.samplescope = {
    pointAt(id) {
      const row = ctx.map.rowOf(id), sc = ctx.map.scatter;
      if (row === undefined) return null;
      const [x, y] = sc.toScreen(row), r = sc.el.getBoundingClientRect();
      return { x: r.left + x, y: r.top + y };
    },
    drawnIds: (limit = Infinity) => Array.from(ctx.map.scatter.order.slice(0, limit), (r) => ctx.map.idOf(r)),
    /** The colour a sample is drawn in, "#rrggbb" (null when it is not on the map). */
    colorOf(id) {
      const row = ctx.map.rowOf(id), rgba = ctx.map.scatter.rgba;
      if (row === undefined || !rgba) return null;
      return "#" + [0, 1, 2].map((c) => rgba[4 * row + c].toString(16).padStart(2, "0")).join("");
    },
  };
  await views.map.load(mapPromise);
  await ctx.tags.refresh();
  comparing.then((summary) => {
    if (!summary) return;
    views.compare = new CompareView(ctx, $("section[data-view=compare]"), summary);
    $("[data-testid=tab-compare]").hidden = false;
    if (state.view === "compare") show(); else views.compare.mapColumn();
  });
  if (state.sample !== "") sample.show();
  ctx.insights().then((cards) => { $("[data-testid=insight-count]").textContent = cards.length || ""; });
  document.body.dataset.ready = "1";
}

function trustNotice(trust, pictures) {
  // The run's own code did not run: say which features are off and how to turn them on.
  // Or the samples have no pictures (an input shape nothing draws): say why and what to declare.
  const box = $("[data-testid=trust-notice]");
  if (pictures) { box.textContent = `No sample pictures: ${pictures}`; box.hidden = false; return; }
  if (!trust || trust.trusted || !trust.hint) { box.hidden = true; return; }
  const off = trust.inputs ? "new heatmaps are" : "sample images and heatmaps are";
  box.textContent = `Read-only: this run's code is not trusted here, so ${off} off. ` +
    "If you trust whoever made it, run `samplescope trust RUN` once, or serve it with --trust.";
  box.title = trust.hint;
  box.hidden = false;
}

function header(run) {
  // classification: accuracy; other tasks: the share that is not an error under the task's rule
  const ok = !run.task || run.task.name === "classification" ? "acc" : "no error";
  $("[data-testid=run-name]").textContent = run.name;
  $("[data-testid=run-stats]").innerHTML = run.subsets.map((s) =>
    `<span>${s.name} <b>${s.count.toLocaleString()}</b>${s.accuracy === null ? "" : ` · ${ok} <b>${(100 * s.accuracy).toFixed(1)}%</b>`}</span>`).join("");
  document.title = `${run.name} · samplescope`;
}

const MAP_FIRST = ["label", "prediction", "correct", "cluster", "loss", "confidence", "margin", "subset", "nearest_centroid", "dist_to_gt_centroid"];
const NOT_STYLE = new Set(["sample_id", "key", "map_x", "map_y"]);

function mapControls(ctx) {
  const cols = Object.keys(ctx.kinds).filter((c) => !NOT_STYLE.has(c));
  const ordered = [...MAP_FIRST.filter((c) => ctx.kinds[c]), ...cols.filter((c) => !MAP_FIRST.includes(c))];
  const numeric = ordered.filter((c) => ctx.kinds[c] === "numeric");
  const groups = ordered.filter((c) => ctx.kinds[c] !== "numeric");
  const root = $("section[data-view=map]");
  const q = (t) => root.querySelector(`[data-testid=${t}]`);
  options(q("subset-filter"), [["all", "all subsets"], ...ctx.run.subsets.map((s) => [s.name, s.name])], state.subset);
  options(q("color-select"), ordered, state.color);
  options(q("size-select"), [["", "constant"], ...numeric], state.size);
  options(q("range-column"), [["", "no column"], ...numeric], state.fcol);
  options(q("category-column"), [["", "no column"], ...groups], state.ccol);
  for (const input of root.querySelectorAll("[data-key]")) {
    input.onchange = () => {
      const patch = { [input.dataset.key]: input.value };
      if (input.dataset.key === "fcol") Object.assign(patch, { fmin: "", fmax: "" });
      if (input.dataset.key === "ccol") patch.cval = "";
      update(patch);
    };
  }
  root.querySelectorAll("button[data-tool]").forEach((b) => { b.onclick = () => update({ tool: b.dataset.tool }); });
  q("reset-view").onclick = () => ctx.map.scatter.resetView();
  q("clear-filters").onclick = () => update({ subset: "all", fcol: "", fmin: "", fmax: "", ccol: "", cval: "", insight: "" });
  syncControls.ctx = ctx;
  ctx.onStyled = syncControls;
  syncControls();
}

/** Make the map's form controls show the state (after back/forward or a legend click). */
function syncControls() {
  const ctx = syncControls.ctx;
  const root = $("section[data-view=map]");
  for (const input of root.querySelectorAll("[data-key]")) {
    if (input.dataset.key === "cval") continue;
    if (input.value !== state[input.dataset.key]) input.value = state[input.dataset.key];
  }
  const cval = root.querySelector("[data-testid=category-value]");
  const col = ctx?.map?.cols?.[state.ccol];
  const values = col?.categories || (state.cval ? [state.cval] : []);
  if (cval.dataset.column !== state.ccol || cval.options.length !== values.length + 1) {
    options(cval, [["", state.ccol ? "any value" : "—"], ...values], state.cval);
    cval.dataset.column = state.ccol;
  }
  cval.value = state.cval;
  root.querySelectorAll("button[data-tool]").forEach((b) => b.classList.toggle("active", b.dataset.tool === state.tool));
}

main().catch((err) => { console.error(err); toast(`Could not load the run: ${err.message}`); });

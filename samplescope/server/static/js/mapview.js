// a. The population map: filters, colour, size, legend, hover, selection panel.

import { fetchMap, fetchViewport, imageUrl, missingCode, postJSON, getJSON } from "./api.js";
import { CORRECT, MISSING, categoryColor, hexToRgb, ramp, rampCss } from "./colors.js";
import { Scatter } from "./scatter.js";
import { fmt } from "./charts.js";
import { state, update } from "./state.js";
import { el, esc, thumbs } from "./dom.js";

const STYLE_KEYS = ["color", "size", "subset", "fcol", "fmin", "fmax", "ccol", "cval", "insight"];

export class MapView {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.mapEl = root.querySelector("[data-testid=map]");
    this.tooltip = root.querySelector("[data-testid=tooltip]");
    this.panel = root.querySelector("[data-testid=selection-panel]");
    this.legend = root.querySelector("[data-testid=legend]");
    this.chips = root.querySelector("[data-testid=filter-chips]");
    this.status = root.querySelector("[data-testid=map-status]");
    this.cols = {};
    this.selection = null; // {rows, title}
    this.similar = [];
    const renderer = new URLSearchParams(location.search).get("renderer");
    this.scatter = new Scatter(this.mapEl, {
      renderer,
      onHover: (i, x, y) => this.hover(i, x, y),
      onClick: (i) => { if (i >= 0) update({ sample: this.idOf(i) }, { push: true }); },
      onSelect: (rows, polygon) => this.select(rows, `${state.tool === "box" ? "Box" : "Lasso"} selection`, polygon),
      onDraw: (n) => this.drawn(n),
      onView: () => this.viewMoved(),
    });
    this.scatter.setTool(state.tool);
  }

  // --- loading ----------------------------------------------------------------------------

  async load(mapPromise) {
    const data = await mapPromise;
    this.header = data.header;
    this.bytes = data.bytes;
    // A large run sends an overview (header.sampled) and, zoomed in, its viewport's samples.
    this.sampled = Boolean(data.header.sampled);
    this.total = data.header.total ?? data.n;
    this.base = { n: data.n, cols: { ...data.columns } };
    this.detail = null;
    this.merge(false);
    if (state.insight !== "") await this.applyInsight();
    await this.restyle();
  }

  /** this.cols, this.ids and the scatter's points: the overview plus the viewport's samples. */
  merge(keepView = true) {
    const base = this.base, detail = this.detail;
    let extra = [];
    if (detail) {
      const have = new Set(base.cols.sample_id.values);
      const ids = detail.cols.sample_id.values;
      for (let j = 0; j < detail.n; j++) if (!have.has(ids[j])) extra.push(j);
    }
    this.n = base.n + extra.length;
    const cols = {};
    for (const [name, col] of Object.entries(base.cols)) {
      if (!extra.length) { cols[name] = col; continue; }
      const more = detail.cols[name];
      if (!more && !col.fill) continue; // asked for after the viewport came: dropped until it comes again
      const values = new col.values.constructor(this.n);
      values.set(col.values);
      // a column of the page (tags.js, compare.js) gives its own value for each sample the viewport adds
      for (let k = 0; k < extra.length; k++) values[base.n + k] = more ? more.values[extra[k]] : col.fill(detail.cols.sample_id.values[extra[k]]);
      cols[name] = { ...col, values };
    }
    this.cols = cols;
    if (this.cols.sample_id) {
      this.ids = this.cols.sample_id.values;
      this.rowById = new Map(Array.from(this.ids, (id, row) => [id, row]));
    } else {
      this.ids = null;
    }
    this.scatter.setPositions(this.cols.x.values, this.cols.y.values, keepView);
  }

  idOf(row) { return this.ids ? this.ids[row] : row; }
  rowOf(id) { return this.ids ? this.rowById.get(id) : (id >= 0 && id < this.n ? id : undefined); }

  async ensure(names) {
    const missing = [...new Set(names.filter((c) => c && !this.base.cols[c] && this.ctx.kinds[c]))];
    if (!missing.length) return;
    const data = await fetchMap({ columns: missing.join(",") });
    for (const c of missing) this.base.cols[c] = data.columns[c];
    if (this.detail) await this.fetchDetail(); else this.merge();
  }

  /** The page's map filters, as the server takes them (/api/map/viewport, counts, selection). */
  filters() {
    const numeric = state.fcol && this.ctx.kinds[state.fcol] === "numeric";
    return {
      subset: state.subset === "all" ? "" : state.subset,
      fcol: numeric && (state.fmin !== "" || state.fmax !== "") ? state.fcol : "",
      fmin: numeric ? state.fmin : "", fmax: numeric ? state.fmax : "",
      // a column of the page only (a tag, the comparison) filters here, not on the server
      ccol: state.cval !== "" && !this.base?.cols[state.ccol]?.fill ? state.ccol : "", cval: state.ccol && !this.base?.cols[state.ccol]?.fill ? state.cval : "",
    };
  }

  /** Whether a filter the server does not know hides samples: a page column's value (tags.js,
   * compare.js) or an insight. */
  pageOnlyFilter() {
    return state.insight !== "" || (state.cval !== "" && Boolean(this.base?.cols[state.ccol]?.fill));
  }

  // --- detail: every sample of the viewport, when a sampled map is zoomed in ---------------

  viewMoved() {
    if (!this.sampled) return;
    clearTimeout(this.viewTimer);
    this.viewTimer = setTimeout(() => this.fetchDetail().then(() => this.restyle()), 200);
  }

  async fetchDetail() {
    const token = (this.detailToken = (this.detailToken || 0) + 1);
    if (this.scatter.zoom() < 1.5) {
      this.detail = null;
    } else {
      const [x0, x1, y0, y1] = this.scatter.visibleBox();
      const columns = Object.keys(this.base.cols).filter((c) => !["x", "y", "sample_id"].includes(c) && this.ctx.kinds[c] && !this.base.cols[c].fill);
      const data = await fetchViewport({ x0, x1, y0, y1, columns: columns.join(","), ...this.filters() });
      if (token !== this.detailToken) return;
      this.detail = { n: data.n, cols: data.columns, total: data.header.total, complete: data.header.complete };
    }
    this.merge();
  }

  // --- styling ----------------------------------------------------------------------------

  async onState(changed) {
    if (changed.has("tool")) this.scatter.setTool(state.tool);
    if (changed.has("sample")) { this.similar = []; this.updateHighlight(); }
    if (STYLE_KEYS.some((k) => changed.has(k))) {
      if (changed.has("insight")) await this.applyInsight();
      if (this.detail) await this.fetchDetail(); // the viewport's samples under the new filters
      await this.restyle();
    }
  }

  async restyle() {
    if (!this.n) return;
    const token = (this.styleToken = (this.styleToken || 0) + 1);
    const known = (c) => (c && this.ctx.kinds[c] ? c : "");
    const color = known(state.color) || "label", size = known(state.size);
    await this.ensure([color, size, known(state.fcol), known(state.ccol)]);
    if (token !== this.styleToken) return;
    const visible = this.visibleMask();
    const { rgba, legend } = this.colors(color, visible);
    let shown = 0;
    for (let i = 0; i < this.n; i++) shown += visible[i];
    const sizes = this.sizes(size, shown);
    // Draw order: background first; errors (and the selection) on top.
    const correct = this.cols.correct?.values;
    const sel = this.selectedMask();
    const back = [], front = [];
    for (let i = 0; i < this.n; i++) {
      if (!visible[i]) continue;
      const top = sel ? sel[i] : color === "correct" && correct && correct[i] === 0;
      (top ? front : back).push(i);
    }
    if (this.cols[color].kind === "numeric" && !sel) {
      const v = this.cols[color].values;
      back.sort((a, b) => (v[a] || 0) - (v[b] || 0)); // high values (e.g. loss) drawn on top
    }
    if (sel) for (const i of back) rgba[4 * i + 3] = 46;
    const order = new Uint32Array(back.length + front.length);
    order.set(back); order.set(front, back.length);
    this.visibleCount = order.length;
    this.scatter.setStyle(order, rgba, sizes);
    this.renderLegend(color, legend);
    this.renderChips();
    this.updateHighlight();
    if (this.ctx.onStyled) this.ctx.onStyled();
    if (!this.sampled) {
      this.status.textContent = `${order.length.toLocaleString()} of ${this.n.toLocaleString()} samples · ${this.scatter.kind}`;
      return;
    }
    const d = this.detail;
    const where = d ? (d.complete ? `every one of the ${d.total.toLocaleString()} in view` : `${d.total.toLocaleString()} in view, zoom in for all`) : "overview, zoom in for every sample";
    this.status.textContent = `${order.length.toLocaleString()} drawn of ${this.total.toLocaleString()} samples (${where}) · ${this.scatter.kind}`;
    this.status.dataset.sampled = "1";
    this.status.dataset.detail = d ? (d.complete ? "complete" : "partial") : "";
    if (legend.kind === "categorical" && !this.cols[color].fill) await this.countLegend(color, token);
  }

  /** A sampled map's legend counts every sample the filters keep (one GROUP BY on the server). */
  async countLegend(color, token) {
    const counts = await getJSON(`/api/map/counts?${new URLSearchParams({ column: color, ...clean(this.filters()) })}`);
    if (token !== this.styleToken) return;
    const items = this.legend.querySelectorAll("[data-testid=legend-item] .n");
    counts.counts.forEach((n, k) => { if (items[k]) items[k].textContent = n.toLocaleString(); });
    this.legend.dataset.total = String(counts.total);
  }

  visibleMask() {
    const n = this.n, mask = new Uint8Array(n).fill(1);
    const subsetCol = this.cols.subset;
    if (state.subset !== "all" && subsetCol) {
      const code = subsetCol.categories.indexOf(state.subset);
      for (let i = 0; i < n; i++) if (subsetCol.values[i] !== code) mask[i] = 0;
    }
    const f = this.cols[state.fcol];
    if (f && f.kind === "numeric" && (state.fmin !== "" || state.fmax !== "")) {
      const lo = state.fmin === "" ? -Infinity : +state.fmin, hi = state.fmax === "" ? Infinity : +state.fmax;
      for (let i = 0; i < n; i++) { const v = f.values[i]; if (!(v >= lo && v <= hi)) mask[i] = 0; }
    }
    const c = this.cols[state.ccol];
    if (c && c.categories && state.cval !== "") {
      const code = c.categories.indexOf(state.cval);
      for (let i = 0; i < n; i++) if (c.values[i] !== code) mask[i] = 0;
    }
    if (this.insightRows) {
      const keep = new Uint8Array(n);
      for (const r of this.insightRows) keep[r] = 1;
      for (let i = 0; i < n; i++) mask[i] &= keep[i];
    }
    return mask;
  }

  selectedMask() {
    if (!this.selection || state.insight) return null;
    const m = new Uint8Array(this.n);
    for (const id of this.selection.ids) { const r = this.rowOf(id); if (r !== undefined) m[r] = 1; }
    return m;
  }

  colors(name, visible) {
    const col = this.cols[name], n = this.n, rgba = new Uint8Array(4 * n);
    const grey = hexToRgb(MISSING);
    const put = (i, c) => { rgba[4 * i] = c[0]; rgba[4 * i + 1] = c[1]; rgba[4 * i + 2] = c[2]; rgba[4 * i + 3] = 255; };
    if (col.kind === "numeric") {
      const [lo, hi, log] = colorRange(col.values);
      const f = log ? (v) => Math.log(Math.max(v, lo)) : (v) => v;
      const a = f(lo), span = f(hi) - a || 1;
      for (let i = 0; i < n; i++) {
        const v = col.values[i];
        put(i, Number.isFinite(v) ? ramp((f(v) - a) / span) : grey);
      }
      return { rgba, legend: { kind: "numeric", lo, hi, log } };
    }
    const cats = col.categories, miss = missingCode(col);
    const own = this.ctx.palettes?.[name]; // a page column's own colours (compare.js: fixed green, broken red)
    const palette = cats.map((c, k) => hexToRgb(own?.[k] ?? (name === "correct" ? CORRECT[c] : categoryColor(k))));
    const counts = new Array(cats.length).fill(0);
    for (let i = 0; i < n; i++) {
      const code = col.values[i];
      if (code === miss || code >= cats.length) { put(i, grey); continue; }
      put(i, palette[code]);
      if (visible[i]) counts[code]++;
    }
    return { rgba, legend: { kind: "categorical", cats, palette, counts } };
  }

  sizes(name, shown) {
    const n = this.n, base = shown > 40000 ? 2.6 : shown > 10000 ? 3.6 : shown > 1500 ? 5 : 7;
    const out = new Float32Array(n).fill(base);
    const col = this.cols[name];
    if (!col || col.kind !== "numeric") return out;
    const [lo, hi] = robustRange(col.values);
    const span = hi - lo || 1;
    for (let i = 0; i < n; i++) {
      const v = col.values[i];
      out[i] = Number.isFinite(v) ? base * (0.6 + 2.4 * Math.min(1, Math.max(0, (v - lo) / span))) : base * 0.6;
    }
    return out;
  }

  renderLegend(name, legend) {
    this.legend.innerHTML = `<h3>${esc(name)}</h3>`;
    this.legend.dataset.column = name;
    if (legend.kind === "numeric") {
      this.legend.append(
        el(`<div class="ramp" style="background:${rampCss()}"></div>`),
        el(`<div class="ends"><span>≤ ${fmt(legend.lo)}</span>${legend.log ? "<span>log scale</span>" : ""}<span>≥ ${fmt(legend.hi)}</span></div>`),
      );
      return;
    }
    const filtering = state.ccol === name && state.cval !== "";
    legend.cats.forEach((cat, k) => {
      const item = el(`<div class="item" data-testid="legend-item" data-value="${esc(cat)}">
        <span class="sw" style="background:rgb(${legend.palette[k]})"></span>
        <span>${esc(cat)}</span><span class="n">${legend.counts[k].toLocaleString()}</span></div>`);
      if (filtering && state.cval !== cat) item.classList.add("off");
      item.title = "Click to show only this value, again to show all";
      item.onclick = () => update(filtering && state.cval === cat ? { ccol: "", cval: "" } : { ccol: name, cval: cat });
      this.legend.appendChild(item);
    });
  }

  renderChips() {
    const chips = [];
    if (state.subset !== "all") chips.push([`subset: ${state.subset}`, { subset: "all" }]);
    if (state.fcol && (state.fmin !== "" || state.fmax !== "")) {
      chips.push([`${state.fmin || "−∞"} ≤ ${state.fcol} ≤ ${state.fmax || "∞"}`, { fmin: "", fmax: "" }]);
    }
    if (state.ccol && state.cval !== "") chips.push([`${state.ccol} = ${state.cval}`, { cval: "" }]);
    if (state.insight !== "") {
      const card = this.ctx.insightById?.get(+state.insight);
      chips.push([`insight: ${card ? card.title : state.insight}`, { insight: "" }]);
    }
    this.chips.innerHTML = "";
    for (const [text, clear] of chips) {
      const chip = el(`<span class="chip" data-testid="filter-chip"><span>${esc(text)}</span><button title="Remove">×</button></span>`);
      chip.querySelector("button").onclick = () => update(clear);
      this.chips.appendChild(chip);
    }
  }

  drawn(count) {
    if (this.firstDrawn || !count) return;
    this.firstDrawn = true;
    window.__mapDrawnAt = performance.now();
    performance.mark("samplescope:map-drawn");
    this.mapEl.dataset.ready = "1";
  }

  // --- hover, selection, highlights ---------------------------------------------------------

  hover(i, x, y) {
    if (i < 0) { this.tooltip.hidden = true; return; }
    const id = this.idOf(i), classes = this.ctx.classes;
    const label = this.cols.label.values[i], pred = this.cols.prediction.values[i];
    // a class name, a regression value, or a label set's text (samplescope/tasks)
    const text = (col, c) => (col.kind === "numeric" ? fmt(c) : (col.categories ?? classes)[c] ?? "–");
    const name = (c) => text(this.cols.label, c);
    const predName = (c) => text(this.cols.prediction, c);
    const wrong = this.cols.correct ? this.cols.correct.values[i] === 0 : label !== pred;
    this.tooltip.innerHTML = `<img src="${imageUrl(id)}" alt="">
      <div><b>#${id}</b> <span class="tag">${esc(this.cols.subset.categories[this.cols.subset.values[i]] || "")}</span><br>
      label <b>${esc(name(label))}</b> · predicted <b class="${wrong ? "wrong" : ""}">${esc(predName(pred))}</b><br>
      loss ${fmt(this.cols.loss.values[i])}</div>`;
    this.tooltip.dataset.sampleId = id;
    this.tooltip.hidden = false;
    const w = this.tooltip.offsetWidth, h = this.tooltip.offsetHeight;
    this.tooltip.style.left = `${Math.min(window.innerWidth - w - 8, x + 14)}px`;
    this.tooltip.style.top = `${Math.min(window.innerHeight - h - 8, y + 14)}px`;
  }

  async applyInsight() {
    if (state.insight === "") { this.insightRows = null; this.closePanel(); return; }
    const card = await this.ctx.insight(+state.insight);
    if (!card) { this.insightRows = null; return; }
    this.insightRows = card.sample_ids.map((id) => this.rowOf(id)).filter((r) => r !== undefined);
    this.selection = { ids: card.sample_ids, title: card.title };
    this.showPanel();
  }

  select(rows, title, polygon = null) {
    // A box or lasso is resolved on the server, over every sample inside it (a sampled map's
    // undrawn ones too), and its stats, tags and saved selection travel as the shape: any size,
    // no list of ids from the page. Only a filter that lives in the page (a tag or change
    // column, an insight) keeps an unsampled map's selection as the drawn ids.
    const shape = polygon && (this.sampled || !this.pageOnlyFilter()) ? polygon : null;
    if (!rows.length && !shape) { this.selection = null; this.closePanel(); this.restyle(); return; }
    // kept as ids: rows move when the viewport's samples change
    this.selection = { ids: rows.map((r) => this.idOf(r)), title, shape, filters: shape ? this.filters() : null };
    this.restyle();
    this.showPanel();
  }

  async showPanel() {
    const sel = this.selection;
    if (!sel) return;
    const ids = sel.ids;
    this.panel.hidden = false;
    this.panel.innerHTML = `<div class="card-head"><h2>${esc(sel.title)}</h2><button class="ghost" data-testid="close-selection">×</button></div><div class="hint">Loading…</div>`;
    this.panel.querySelector("[data-testid=close-selection]").onclick = () => {
      if (state.insight !== "") update({ insight: "" }); else this.select([], "");
    };
    const body = sel.shape ? { polygon: sel.shape, filters: clean(sel.filters) } : { ids };
    const stats = await postJSON("/api/selection", body);
    if (this.selection !== sel) return;
    const classes = this.ctx.classes;
    const max = Math.max(1, ...stats.class_mix.map((c) => c.count));
    this.panel.querySelector(".hint").remove();
    this.panel.append(
      el(`<div class="stats" data-testid="selection-stats" data-count="${stats.count}">
        <div class="stat"><div class="v" data-testid="selection-count">${stats.count.toLocaleString()}</div><div class="k">samples</div></div>
        <div class="stat"><div class="v">${stats.accuracy === null ? "–" : (100 * stats.accuracy).toFixed(1) + "%"}</div><div class="k">${this.ctx.run.task && this.ctx.run.task.name !== "classification" ? "not an error" : "accuracy"}</div></div>
        <div class="stat"><div class="v">${fmt(stats.mean_loss)}</div><div class="k">mean loss</div></div></div>`),
      el(`<div><h3>Class mix</h3><div class="mix">${stats.class_mix.map((c) => `
        <div class="bar" title="${c.count} samples, ${c.errors} ${this.ctx.run.task && this.ctx.run.task.name !== "classification" ? "errors" : "misclassified"}"><span>${esc(classes[c.class_index])}</span>
        <span class="track"><span class="ok" style="width:${(100 * (c.count - c.errors)) / max}%"></span><span class="err" style="width:${(100 * c.errors) / max}%"></span></span>
        <span class="n">${c.count}</span></div>`).join("")}</div></div>`),
      el(`<div class="row"><button data-testid="selection-similar">Similar to these</button></div>`),
      el(`<div><h3>Highest loss</h3></div>`),
    );
    const rows = stats.examples.length
      ? (await getJSON(`/api/samples?ids=${stats.examples.join(",")}&sort=loss&order=desc&limit=60`)).data
      : [];
    if (this.selection !== sel) return;
    const items = rows.map((r) => ({ id: r.sample_id, label: r.label, prediction: r.prediction, loss: r.loss, correct: r.correct }));
    const grid = thumbs(items, classes, (id) => update({ sample: id }, { push: true }));
    grid.dataset.testid = "selection-grid";
    this.panel.lastElementChild.appendChild(grid);
    this.ctx.tags?.attach(this.panel, sel.shape ? { shape: sel.shape, filters: sel.filters } : { ids }, sel.title); // tags.js
    this.panel.querySelector("[data-testid=selection-similar]").onclick = async () => {
      const res = await getJSON(`/api/similar?ids=${stats.examples.slice(0, 50).join(",")}&k=24`);
      this.setSimilar(res.data.map((r) => r.sample_id));
      this.ctx.tags?.attach(this.panel, { ids: res.data.map((r) => r.sample_id) }, "similar samples");
    };
  }

  closePanel() { this.panel.hidden = true; this.panel.innerHTML = ""; }

  setSimilar(ids) { this.similar = ids; this.updateHighlight(); }

  updateHighlight() {
    if (!this.n) return;
    const ids = [...this.similar];
    if (state.sample !== "") ids.push(+state.sample);
    this.scatter.setHighlight(ids.map((id) => this.rowOf(id)).filter((r) => r !== undefined));
  }
}

/** Map filters as a JSON body: numbers as numbers, empty ones left out. */
function clean(filters) {
  const out = {};
  for (const [k, v] of Object.entries(filters)) {
    if (v === "" || v === null || v === undefined) continue;
    out[k] = k === "fmin" || k === "fmax" ? +v : v;
  }
  return out;
}

/**
 * Colour range of a numeric column: [p1, p99, log]. Skewed non-negative columns (loss)
 * get a log scale, or nearly every point would share the lowest colour.
 */
function colorRange(values) {
  const [lo, hi, mid] = robustRange(values);
  if (lo >= 0 && hi > 0 && hi > 20 * Math.max(mid, 1e-12)) return [Math.max(lo, hi * 1e-4), hi, true];
  return [lo, hi, false];
}

/** 1st and 99th percentile (and the median) of the finite values (a sample when there are many). */
function robustRange(values) {
  const step = Math.max(1, Math.floor(values.length / 20000));
  const xs = [];
  for (let i = 0; i < values.length; i += step) if (Number.isFinite(values[i])) xs.push(values[i]);
  if (!xs.length) return [0, 1];
  xs.sort((a, b) => a - b);
  return [xs[Math.floor(0.01 * (xs.length - 1))], xs[Math.ceil(0.99 * (xs.length - 1))], xs[Math.floor(0.5 * (xs.length - 1))]];
}

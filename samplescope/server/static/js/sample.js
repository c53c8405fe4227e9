// b. One sample: picture, heatmaps, probabilities, centroid distances, metadata, similars.

import { getJSON, imageUrl } from "./api.js";
import { fmt } from "./charts.js";
import { formatCell } from "./format.js";
import { state, update } from "./state.js";
import { el, esc, options, thumbs } from "./dom.js";
import { defaultTargets, errorWord, heatmapTargets, isError, valueText } from "./taskviews.js";
import { METHODS, applies, drawAttribution, explainFailure, methodButtons, methodFor } from "./attribution.js";

const HIDDEN = /^(prob_\d+|dist_to_centroid_\d+|label_name|prediction_name|nearest_centroid_name)$/;

export class SampleView {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.detail = null;
  }

  onState(changed) {
    if (changed.has("sample")) this.show();
    else if (this.detail && ["method", "t1", "t2"].some((k) => changed.has(k))) this.renderHeatmaps();
    else if (this.detail && changed.has("opacity")) this.applyOpacity();
  }

  async show() {
    document.body.dataset.drawer = state.sample === "" ? "" : "1";
    if (state.sample === "") { this.root.hidden = true; this.detail = null; return; }
    const id = +state.sample;
    this.root.hidden = false;
    this.root.dataset.sampleId = id;
    this.root.innerHTML = `<div class="hint">Loading sample #${id}…</div>`;
    let detail;
    try { detail = await getJSON(`/api/samples/${id}`); } catch (err) {
      this.root.innerHTML = `<div class="head"><h2>Sample #${esc(id)}</h2><button class="close" data-testid="close-sample">×</button></div><div class="note">${esc(err.message)}</div>`;
      this.root.querySelector(".close").onclick = () => update({ sample: "" }, { push: true });
      return;
    }
    if (String(id) !== state.sample) return;
    this.detail = detail;
    this.render();
  }

  render() {
    const d = this.detail, row = d.row, classes = this.ctx.classes;
    const label = row.label, pred = row.prediction;
    const ok = !isError(row);  // the task's notion of an error (samplescope/tasks)
    this.root.innerHTML = "";
    this.root.append(el(`<div class="head">
      <h2 data-testid="sample-title">Sample #${d.sample_id}</h2>
      <span class="tag">${esc(d.subset)}</span>
      <span class="tag ${ok ? "good" : "bad"}">${ok ? "correct" : errorWord(this.ctx)}</span>
      <button class="close" data-testid="close-sample" title="Close">×</button></div>`));
    this.root.querySelector(".close").onclick = () => update({ sample: "" }, { push: true });
    this.root.append(el(`<div>label <b data-testid="sample-label">${esc(valueText(this.ctx, label))}</b> · predicted
      <b data-testid="sample-prediction">${esc(valueText(this.ctx, pred))}</b> · loss <b>${fmt(row.loss)}</b>${row.confidence === undefined ? "" : ` · confidence ${fmt(row.confidence)}`}</div>`));

    // pictures: the image, then heatmaps for two classes (default: predicted, ground truth)
    const pics = el(`<div class="pics${this.kind() === "image" ? "" : " wide"}"></div>`);
    pics.append(el(`<div class="pic"><div class="frame"><img class="base" data-testid="sample-image" src="${imageUrl(d.sample_id)}" alt="sample"></div><span>${{ vector: "features (z against the training rows)", tokens: "text" }[this.kind()] || "image"}</span></div>`));
    // no heatmap panes when no method applies (an input shape nothing draws): the note below says why
    const panes = METHODS.some(([m]) => applies(this.ctx.run, m)) ? [["t1", "heatmap-1"], ["t2", "heatmap-2"]] : [];
    for (const [key, testid] of panes) {
      const error = `<div class="hm-error note" data-testid="${testid}-error" hidden></div>`;
      const pic = el(this.kind() === "image" ? `<div class="pic"><div class="frame"><img class="base" src="${imageUrl(d.sample_id)}" alt="">
        <img class="hm" data-testid="${testid}" alt="heatmap"></div>${error}<select data-key="${key}" data-testid="${testid}-target"></select></div>`
        : `<div class="pic attr"><div class="attr-box" data-testid="${testid}"></div>${error}<select data-key="${key}" data-testid="${testid}-target"></select></div>`);
      const sel = pic.querySelector("select");
      options(sel, heatmapTargets(this.ctx, row), this.target(key));
      sel.onchange = () => update({ [key]: sel.value });
      pics.append(pic);
    }
    this.root.append(pics);
    // only the methods that apply to this run's input and model can be chosen; a note says why not the others
    const { buttons, note } = methodButtons(this.ctx.run);
    const controls = el(`<div class="hm-controls"><div class="seg" data-testid="method-switch">${buttons}</div>
      ${this.kind() === "image" ? `<label>opacity <input type="range" min="0" max="1" step="0.05" data-testid="heatmap-opacity"></label>` : ""}${note}</div>`);
    controls.querySelectorAll("[data-method]").forEach((b) => { b.onclick = () => update({ method: b.dataset.method }); });
    if (!controls.querySelector("input")) controls.append(el(`<input type="range" hidden data-testid="heatmap-opacity">`));
    const slider = controls.querySelector("input");
    slider.value = state.opacity;
    slider.oninput = () => update({ opacity: slider.value });
    this.root.append(controls);
    this.renderHeatmaps();

    // probabilities, ground truth marked
    const probs = d.probabilities;
    if (probs.length) {
      const box = el(`<div><h3>Probabilities</h3><div class="bars" data-testid="probabilities"></div></div>`);
      for (const p of probs) {
        const bar = el(`<div class="bar" data-testid="prob-bar" data-class="${p.class_index}"><span class="name">${esc(p.name)}</span>
          <span class="track"><span class="fill" style="width:${(100 * (p.value || 0)).toFixed(1)}%"></span></span><span class="val">${fmt(p.value)}</span></div>`);
        if (p.class_index === label || row[`label_${p.class_index}`] === true) bar.classList.add("gt");
        if (p.class_index === pred || row[`pred_${p.class_index}`] === true) bar.classList.add("pred");
        box.lastElementChild.append(bar);
      }
      this.root.append(box);
    }

    // distances to every class centroid; nearest and ground truth highlighted
    const dists = d.centroid_distances;
    if (dists.length) {
      const max = Math.max(...dists.map((c) => c.value || 0)) || 1;
      const nearest = d.nearest_centroid ?? dists.reduce((a, b) => (b.value < a.value ? b : a)).class_index;
      const box = el(`<div><h3>Distance to each class centroid</h3><div class="bars" data-testid="centroid-distances"></div></div>`);
      if (nearest !== label && label !== null && label !== undefined) {
        box.insertBefore(el(`<div class="note" data-testid="centroid-note">This ${esc(classes[label])} lies nearer the
          ${esc(classes[nearest])}-centroid than its own class centroid.</div>`), box.lastElementChild);
      }
      for (const c of dists) {
        const bar = el(`<div class="bar" data-testid="centroid-bar" data-class="${c.class_index}"><span class="name">${esc(c.name)}</span>
          <span class="track"><span class="fill" style="width:${(100 * (c.value || 0)) / max}%"></span></span><span class="val">${fmt(c.value)}</span></div>`);
        if (c.class_index === label) bar.classList.add("gt");
        if (c.class_index === nearest) bar.classList.add("nearest");
        box.lastElementChild.append(bar);
      }
      this.root.append(box);
    }

    // similar samples
    const sim = el(`<div><div class="card-head"><h3>Similar samples</h3>
      <button data-testid="fetch-similars">Fetch similars</button></div><div data-testid="similar-grid"></div></div>`);
    sim.querySelector("button").onclick = () => this.fetchSimilar(sim.querySelector("[data-testid=similar-grid]"));
    this.root.append(sim);

    // every other column: integers exact, floats to four digits, class indices by class name
    const rows = Object.entries(row).filter(([k]) => !HIDDEN.test(k));
    const classColumns = this.ctx.classColumns;
    this.root.append(el(`<div><h3>Metadata</h3><table class="meta" data-testid="sample-metadata">${rows.map(([k, v]) =>
      `<tr data-column="${esc(k)}"><td>${esc(k)}</td><td title="${esc(classColumns.has(k) && v !== null ? `class ${v}` : v)}">${
        esc(formatCell(k, v, classes, classColumns))}</td></tr>`).join("")}</table></div>`));
  }

  target(key) {
    const row = this.detail.row;
    if (state[key] !== "") return state[key];
    return defaultTargets(this.ctx, row)[key === "t1" ? 0 : 1];
  }

  kind() {
    return this.ctx.run.input_kind || "image";
  }

  renderHeatmaps() {
    const id = this.detail.sample_id;
    const method = methodFor(this.ctx.run, state.method); // a method that does not apply falls back to one that does
    for (const [key, testid] of [["t1", "heatmap-1"], ["t2", "heatmap-2"]]) {
      const pane = this.root.querySelector(`[data-testid=${testid}]`);
      const sel = this.root.querySelector(`[data-testid=${testid}-target]`);
      const error = this.root.querySelector(`[data-testid=${testid}-error]`);
      if (!pane) continue;
      sel.value = this.target(key);
      error.hidden = true;
      const trust = this.ctx.run.trust;
      if (trust && !(trust.inputs && trust.model)) { pane.hidden = true; continue; } // the notice says why
      const query = `target=${encodeURIComponent(sel.value)}&method=${method}`;
      if (this.kind() === "image") {
        pane.hidden = false;
        pane.onerror = () => explainFailure(pane, error); // the server's message, never a broken image
        pane.src = `/api/samples/${id}/heatmap.png?${query}`;
        continue;
      }
      pane.innerHTML = `<div class="hint">computing…</div>`;
      getJSON(`/api/samples/${id}/heatmap.json?${query}`).then((heat) => {
        if (this.detail && this.detail.sample_id === id) drawAttribution(pane, heat, this.kind());
      }).catch((err) => { pane.innerHTML = ""; error.hidden = false; error.textContent = err.message; });
    }
    this.root.querySelectorAll("[data-method]").forEach((b) => b.classList.toggle("active", b.dataset.method === method));
    this.applyOpacity();
  }

  applyOpacity() {
    this.root.querySelectorAll("img.hm").forEach((img) => { img.style.opacity = state.opacity; });
  }

  async fetchSimilar(box) {
    const id = this.detail.sample_id;
    box.innerHTML = `<div class="hint">Searching…</div>`;
    const res = await getJSON(`/api/samples/${id}/similar?k=${state.k}`);
    if (!this.detail || this.detail.sample_id !== id) return;
    box.innerHTML = "";
    const grid = thumbs(res.data.map((r) => ({
      id: r.sample_id, label: r.label, prediction: r.prediction, loss: r.loss, similarity: r.similarity, correct: r.correct,
    })), this.ctx.classes, (sid) => update({ sample: sid }, { push: true }), "similar-item");
    grid.classList.add("similar");
    box.append(grid);
    box.dataset.count = res.count;
    this.ctx.map.setSimilar(res.data.map((r) => r.sample_id));
  }
}

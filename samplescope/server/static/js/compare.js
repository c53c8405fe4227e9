// The Compare view (`samplescope serve RUN_B --compare RUN_A`): what B fixed and broke against A.
// Summary per subset and class, the map coloured by change (a "change" column added to the
// map), lists of fixed and broken samples; a sample opened from here shows both runs'
// probabilities and heatmaps side by side in the sample view (A's from /api/compare/samples/{id}/heatmap.*).

import { ApiError, decodeMap, getJSON, imageUrl } from "./api.js";
import { fmt } from "./charts.js";
import { drawAttribution, explainFailure, methodFor } from "./attribution.js";
import { state, subscribe, update } from "./state.js";
import { el, esc, thumbs } from "./dom.js";

export const CHANGE_COLORS = { fixed: "#2ca02c", broken: "#d62728", still_wrong: "#ff7f0e", still_right: "#c8c8c8", unlabeled: "#eeeeee", unmatched: "#eeeeee" };
const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(2)}%`);

/** Whether this server compares runs: the summary, or null (no --compare). */
export async function loadComparison() {
  const status = await getJSON("/api/compare/status"); // (a 404 would show as a console error)
  return status.enabled ? getJSON("/api/compare") : null;
}

export class CompareView {
  constructor(ctx, root, summary) {
    this.ctx = ctx;
    this.root = root;
    this.summary = summary;
    this.ready = false;
    this.observeDrawer();
    subscribe((changed) => {
      if (changed.has("sample")) this.drawerExtra();
      else if (["method", "t1", "t2"].some((k) => changed.has(k))) this.heatmaps();
    });
  }

  async init() {
    const s = this.summary;
    const root = this.root;
    root.innerHTML = "";
    const rows = s.summary.map((r) => `<tr><td>${esc(r.subset)}</td><td>${r.samples.toLocaleString()}</td><td>${pct(r.accuracy_a)}</td><td>${pct(r.accuracy_b)}</td>
      <td class="good" data-testid="compare-fixed-${esc(r.subset)}">${r.fixed.toLocaleString()}</td><td class="bad">${r.broken.toLocaleString()}</td><td>${r.still_wrong.toLocaleString()}</td>
      <td>${fmt(r.mean_loss_a)} → ${fmt(r.mean_loss_b)}</td></tr>`).join("");
    const ins = s.insights.length ? ["resolved", "persists", "new"].map((k) => `${s.insights.filter((i) => i.status === k).length} ${k}`).join(", ") : "none";
    root.append(el(`<div class="card compare-card" data-testid="compare-summary">
      <div class="card-head"><h2><span data-testid="compare-a">${esc(s.a.name)}</span> → <span data-testid="compare-b">${esc(s.b.name)}</span></h2>
        <button class="primary" data-testid="compare-on-map">Colour the map by change</button></div>
      <table class="samples"><thead><tr><th>subset</th><th>samples</th><th>accuracy A</th><th>accuracy B</th><th>fixed</th><th>broken</th><th>still wrong</th><th>mean loss</th></tr></thead><tbody>${rows}</tbody></table>
      <p class="hint">Insights of A: ${esc(ins)}. ${Object.entries(s.unmatched).map(([k, v]) => `${esc(k)}: ${v.toLocaleString()}`).join("; ")}</p></div>`));
    root.querySelector("[data-testid=compare-on-map]").onclick = async () => { await this.mapColumn(); update({ view: "map", color: "change" }, { push: true }); };
    for (const status of ["fixed", "broken"]) {
      const card = el(`<div class="card" data-testid="compare-${status}"><div class="card-head"><h2>${status === "fixed" ? "Fixed: wrong in A, right in B" : "Broken: right in A, wrong in B"}
        <span class="badge">${(s.counts[status] || 0).toLocaleString()}</span></h2></div><div class="hint">Loading…</div></div>`);
      root.append(card);
      this.list(card, status);
    }
    this.ready = true;
    await this.mapColumn();
  }

  async list(card, status) {
    const page = await getJSON(`/api/compare/samples?status=${status}&limit=60`);
    const items = page.data.map((r) => ({ id: r.sample_id, label: r.label, prediction: status === "fixed" ? r.prediction_a : r.prediction_b, loss: r.loss_change }));
    const grid = thumbs(items, this.ctx.classes, (id) => update({ sample: id }, { push: true }), `compare-thumb-${status}`);
    card.querySelector(".hint").textContent = `${status === "fixed" ? "A's wrong prediction" : "B's wrong prediction"} under each; the number is the loss change (B − A), biggest first.`;
    card.append(grid);
  }

  /** The map's "change" column (fixed, broken, ...), for colouring and filtering by it. */
  async mapColumn() {
    const map = this.ctx.map;
    if (!map?.base || map.base.cols.change) return;
    // every sample's change, by sample id: a sampled map's overview takes its rows' codes, and each
    // sample a zoomed-in viewport adds (mapview.merge) takes its own from fill
    const response = await fetch("/api/compare/map?every=true");
    if (!response.ok) throw new ApiError(`compare map: ${response.status}`);
    const data = decodeMap(await response.arrayBuffer());
    const every = data.columns.change.values, ids = map.base.cols.sample_id?.values;
    if (ids ? map.base.n > every.length : data.n !== map.base.n) return; // a map reloaded meanwhile
    const values = ids ? Uint8Array.from(ids, (id) => every[id] ?? 255) : every;
    map.base.cols.change = { ...data.columns.change, values, fill: (id) => every[id] ?? 255 };
    this.ctx.kinds.change = "categorical";
    map.merge(); // the drawn columns (overview + viewport) take the new one
    this.ctx.palettes = { ...(this.ctx.palettes || {}), change: data.columns.change.categories.map((c) => CHANGE_COLORS[c]) };
    for (const testid of ["color-select", "category-column"]) {
      const select = document.querySelector(`[data-testid=${testid}]`);
      if (select && ![...select.options].some((o) => o.value === "change")) select.append(new Option("change (compare)", "change"));
      if (select) select.value = state[select.dataset.key];
    }
    if (state.color === "change" || state.ccol === "change") await map.restyle();
  }

  // --- both runs in the sample view -----------------------------------------------------------

  observeDrawer() {
    this.drawer = document.querySelector("[data-testid=sample-view]");
    new MutationObserver(() => this.drawerExtra()).observe(this.drawer, { childList: true });
  }

  async drawerExtra() {
    const id = state.sample;
    if (id === "" || !this.drawer.querySelector("[data-testid=sample-title]") || this.drawer.querySelector("[data-testid=compare-sample]")) return;
    if (this.pending === id) return;
    this.pending = id;
    let d;
    try { d = await getJSON(`/api/compare/samples/${id}`); } catch (err) {
      d = { error: err.message };
    } finally { this.pending = null; }
    if (state.sample !== id || this.drawer.querySelector("[data-testid=compare-sample]")) return;
    const classes = this.ctx.classes;
    const box = el(`<div class="compare-sample" data-testid="compare-sample"><h3>${esc(this.summary.a.name)} (A) and ${esc(this.summary.b.name)} (B)</h3></div>`);
    if (d.error) { box.append(el(`<div class="note">${esc(d.error)}</div>`)); this.drawer.append(box); return; }
    box.dataset.status = d.status;
    box.append(el(`<div>${esc(d.status.replace("_", " "))}: A predicted <b>${esc(classes[d.a.prediction])}</b> (loss ${fmt(d.a.loss)}), B predicted <b>${esc(classes[d.b.prediction])}</b> (loss ${fmt(d.b.loss)})</div>`));
    const bars = d.a.probabilities.map((p, k) => {
      const b = d.b.probabilities[k]?.value ?? 0, a = p.value ?? 0;
      return `<div class="bar2${p.class_index === d.label ? " truth" : ""}" data-testid="compare-prob"><span>${esc(p.name)}</span>
        <span class="track"><span class="a" style="width:${100 * a}%"></span></span><span class="track"><span class="b" style="width:${100 * b}%"></span></span>
        <span class="n">${a.toFixed(2)} / ${b.toFixed(2)}</span></div>`;
    }).join("");
    box.append(el(`<div class="probs2"><div class="bar2 head"><span></span><span>A</span><span>B</span><span>p(A) / p(B)</span></div>${bars}</div>`));
    box.append(el(`<div class="heat2" data-testid="compare-heatmaps"></div>`));
    this.drawer.append(box);
    this.heatmaps();
  }

  /** A's heatmap beside B's for each class the sample view explains (its two target menus). */
  heatmaps() {
    const root = this.drawer.querySelector("[data-testid=compare-heatmaps]");
    if (!root) return;
    const id = state.sample, run = this.ctx.run, kind = run.input_kind || "image";
    root.innerHTML = "";
    if (run.trust && !(run.trust.inputs && run.trust.model)) { root.textContent = "Heatmaps are off: this run's code is not trusted here."; return; }
    const method = methodFor(run, state.method);
    const targets = ["heatmap-1-target", "heatmap-2-target"].map((t) => this.drawer.querySelector(`[data-testid=${t}]`)).filter(Boolean);
    if (this.summary.a_trust && !this.summary.a_trust.trusted) {
      root.append(el(`<div class="hint" data-testid="compare-a-trust">A's code is not trusted here: only heatmaps stored in A are shown (${esc(this.summary.a_trust.hint || "")}).</div>`));
    }
    for (const sel of targets) {
      const query = `target=${encodeURIComponent(sel.value)}&method=${method}`;
      const name = sel.selectedOptions[0]?.textContent ?? sel.value;
      const row = el(`<div class="pics heat2-row" data-testid="compare-heatmap-row" data-target="${esc(sel.value)}"></div>`);
      for (const [side, base] of [["a", `/api/compare/samples/${id}`], ["b", `/api/samples/${id}`]]) {
        const caption = `${side.toUpperCase()}: ${esc(name)}`;
        const error = `<div class="hm-error note" hidden></div>`;
        if (kind === "image") {
          const pic = el(`<div class="pic"><div class="frame"><img class="base" src="${imageUrl(id)}" alt="">
            <img class="hm" data-testid="compare-heatmap-${side}" alt="heatmap of ${side.toUpperCase()}"></div>${error}<span>${caption}</span></div>`);
          const img = pic.querySelector("img.hm");
          img.style.opacity = state.opacity;
          img.onerror = () => explainFailure(img, pic.querySelector(".hm-error")); // e.g. A is not trusted
          img.src = `${base}/heatmap.png?${query}`;
          row.append(pic);
        } else {
          const pic = el(`<div class="pic attr"><div class="attr-box" data-testid="compare-heatmap-${side}"><div class="hint">computing…</div></div>${error}<span>${caption}</span></div>`);
          const box = pic.querySelector(".attr-box");
          getJSON(`${base}/heatmap.json?${query}`).then((heat) => { if (state.sample === id) drawAttribution(box, heat, kind); })
            .catch((err) => { box.innerHTML = ""; const e = pic.querySelector(".hm-error"); e.hidden = false; e.textContent = err.message; });
          row.append(pic);
        }
      }
      root.append(row);
    }
  }

  onState() {}
}

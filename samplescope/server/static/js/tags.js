// Tags and saved selections: tag or save any selection (box, lasso, insight, similar samples,
// what the filters show, a confusion cell), list / rename / delete / export them, and filter
// or colour the map by a tag. Writes go to /api/tags and /api/selections (routes/annotations.py).

import { getJSON, postJSON } from "./api.js";
import { state, subscribe, update } from "./state.js";
import { el, esc } from "./dom.js";

const MAX_IDS = 100000; // ids per request (server/limits.py MAX_IDS)
const TAG = "tag:"; // map columns "tag:NAME": whether a sample carries the tag

const send = (url, body, method = "POST") => getJSON(url, {
  method, headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body),
});
const q = (name) => new URLSearchParams({ name }).toString();

export class Tags {
  constructor(ctx, root, toast) {
    this.ctx = ctx;
    this.root = root.appendChild(el(`<div class="tags-body"></div>`)); // in the map controls' "Tags & selections"
    this.toast = toast;
    this.tags = [];
    this.selections = [];
    this.ids = new Map(); // tag name -> Set of sample ids (for the map's tag columns)
    this.cellBar = document.querySelector("[data-testid=cell-tagbar]");
    subscribe((changed) => {
      if (["tlabel", "tpred", "tsubset", "view"].some((k) => changed.has(k))) this.renderCellBar();
    });
  }

  async refresh() {
    const [tags, sels] = await Promise.all([getJSON("/api/tags"), getJSON("/api/selections")]);
    this.tags = tags.data;
    this.selections = sels.data;
    for (const name of [...this.ids.keys()]) if (!this.tags.some((t) => t.name === name)) this.ids.delete(name);
    await this.syncColumns();
    this.render();
  }

  // --- the map's tag columns --------------------------------------------------------------

  /** A bool column "tag:NAME" on the map for each tag, so the map colours and filters by it. */
  async syncColumns() {
    const map = this.ctx.map;
    if (!map?.base) return;
    for (const key of Object.keys(map.base.cols)) {
      if (key.startsWith(TAG) && !this.tags.some((t) => TAG + t.name === key)) { delete map.base.cols[key]; delete this.ctx.kinds[key]; }
    }
    const wanted = new Set([state.color, state.ccol].filter((c) => c.startsWith(TAG)).map((c) => c.slice(TAG.length)));
    for (const t of this.tags) if (wanted.has(t.name) || this.ids.has(t.name)) await this.column(t.name);
    this.syncOptions();
    if (wanted.size) await map.restyle();
  }

  async column(name, reload = false) {
    const map = this.ctx.map;
    if (reload || !this.ids.has(name)) {
      const ids = [];
      for (let offset = 0; ; offset += MAX_IDS) {
        const page = await getJSON(`/api/tags/samples?${q(name)}&offset=${offset}&limit=${MAX_IDS}`);
        ids.push(...page.ids);
        if (ids.length >= page.count || !page.ids.length) break;
      }
      this.ids.set(name, new Set(ids));
    }
    const set = this.ids.get(name);
    const values = new Uint8Array(map.base.n);
    for (let r = 0; r < map.base.n; r++) values[r] = set.has(map.base.cols.sample_id ? map.base.cols.sample_id.values[r] : r) ? 1 : 0;
    // fill: the value of a sample a sampled map's viewport adds (mapview.merge)
    map.base.cols[TAG + name] = { kind: "bool", dtype: "uint8", categories: ["false", "true"], values, fill: (id) => (set.has(id) ? 1 : 0) };
    this.ctx.kinds[TAG + name] = "bool";
    map.merge(); // the drawn columns (overview + viewport) take the new one
  }

  syncOptions() {
    const names = this.tags.map((t) => TAG + t.name);
    for (const testid of ["color-select", "category-column"]) {
      const select = document.querySelector(`[data-testid=${testid}]`);
      if (!select) continue;
      for (const o of [...select.options]) if (o.value.startsWith(TAG) && !names.includes(o.value)) o.remove();
      for (const n of names) {
        if (![...select.options].some((o) => o.value === n)) select.append(new Option(n, n));
      }
      select.value = state[select.dataset.key];
    }
  }

  async show(name, how) {
    await this.column(name);
    this.syncOptions();
    update(how === "colour" ? { color: TAG + name } : { ccol: TAG + name, cval: "true" });
  }

  // --- the list ---------------------------------------------------------------------------

  render() {
    const root = this.root;
    root.innerHTML = "";
    root.append(el(`<div class="row"><button class="ghost" data-testid="tag-shown" title="Tag or save every sample the map shows now">Tag what the map shows…</button></div>`));
    root.querySelector("[data-testid=tag-shown]").onclick = () => this.fromShown();
    const tags = el(`<div class="tag-list" data-testid="tag-list"></div>`);
    if (!this.tags.length) tags.append(el(`<div class="hint">No tags yet: select samples, then tag them.</div>`));
    for (const t of this.tags) {
      const href = (fmt) => `/api/tags/export?${q(t.name)}&format=${fmt}`;
      const row = el(`<div class="tag-row" data-testid="tag-row" data-name="${esc(t.name)}">
        <span class="tag-name" title="${esc(t.name)}">${esc(t.name)}</span><span class="n" data-testid="tag-count">${t.count.toLocaleString()}</span>
        <span class="tag-actions">
          <button class="link" data-act="filter" title="Show only these samples">show</button>
          <button class="link" data-act="colour" title="Colour the map by this tag">colour</button>
          <button class="link" data-act="rename">rename</button><button class="link" data-act="delete">delete</button>
          <a data-testid="tag-export-csv" href="${href("csv")}" download>csv</a> <a href="${href("parquet")}" download>parquet</a> <a href="${href("json")}" download>json</a>
        </span></div>`);
      row.querySelector("[data-act=filter]").onclick = () => this.show(t.name, "filter");
      row.querySelector("[data-act=colour]").onclick = () => this.show(t.name, "colour");
      row.querySelector("[data-act=rename]").onclick = () => this.rename("tags", t.name);
      row.querySelector("[data-act=delete]").onclick = () => this.remove("tags", t.name);
      tags.append(row);
    }
    const sels = el(`<div class="tag-list" data-testid="selection-list"><h4>Saved selections</h4></div>`);
    if (!this.selections.length) sels.append(el(`<div class="hint">None saved.</div>`));
    for (const s of this.selections) {
      const href = (fmt) => `/api/selections/export?${q(s.name)}&format=${fmt}`;
      const row = el(`<div class="tag-row" data-testid="saved-selection" data-name="${esc(s.name)}" title="${esc(s.note || "")}">
        <button class="link tag-name" data-act="open" title="${esc(s.note || "Show on the map")}">${esc(s.name)}</button><span class="n">${s.count.toLocaleString()}</span>
        <span class="tag-actions"><button class="link" data-act="rename">rename</button><button class="link" data-act="delete">delete</button>
          <a href="${href("csv")}" download>csv</a> <a href="${href("parquet")}" download>parquet</a> <a href="${href("json")}" download>json</a></span>
        ${s.note ? `<div class="note">${esc(s.note)}</div>` : ""}</div>`);
      row.querySelector("[data-act=open]").onclick = () => this.open(s);
      row.querySelector("[data-act=rename]").onclick = () => this.rename("selections", s.name);
      row.querySelector("[data-act=delete]").onclick = () => this.remove("selections", s.name);
      sels.append(row);
    }
    root.append(tags, sels);
  }

  async open(saved) {
    const page = await getJSON(`/api/selections/samples?${q(saved.name)}&limit=${MAX_IDS}`);
    const map = this.ctx.map;
    update({ view: "map", insight: "" });
    map.selection = { ids: page.ids, title: `Saved: ${saved.name}` };
    await map.restyle();
    map.showPanel();
  }

  async rename(kind, name) {
    const next = window.prompt(`Rename ${kind === "tags" ? "tag" : "selection"} "${name}" to:`, name);
    if (!next || next === name) return;
    await send(`/api/${kind}/rename`, { name, new_name: next });
    if (kind === "tags") this.renamed(name, next);
    await this.refresh();
  }

  renamed(name, next) {
    if (this.ids.has(name)) { this.ids.set(next, this.ids.get(name)); this.ids.delete(name); }
    const patch = {};
    if (state.color === TAG + name) patch.color = TAG + next;
    if (state.ccol === TAG + name) patch.ccol = TAG + next;
    if (Object.keys(patch).length) update(patch);
  }

  async remove(kind, name) {
    if (!window.confirm(`Delete ${kind === "tags" ? "tag" : "selection"} "${name}"?`)) return;
    await send(`/api/${kind}?${q(name)}`, undefined, "DELETE");
    if (kind === "tags") {
      const patch = {};
      if (state.color === TAG + name) patch.color = "label";
      if (state.ccol === TAG + name) Object.assign(patch, { ccol: "", cval: "" });
      update(patch);
    }
    await this.refresh();
  }

  // --- tagging and saving a selection --------------------------------------------------------

  /** A "tag or save" form in a selection panel; what = {ids} or {shape, filters}, its title. */
  attach(panel, what, title) {
    panel.querySelector("[data-testid=tag-form]")?.remove();
    const n = what.ids ? what.ids.length : null;
    const form = el(`<form class="tag-form" data-testid="tag-form">
      <h3>Tag or save ${n === null ? "these samples" : `these ${n.toLocaleString()} samples`}</h3>
      <input data-testid="tag-name" list="known-tags" maxlength="100" placeholder="name: mislabeled, relabel:7, exclude…" required>
      <datalist id="known-tags">${this.tags.map((t) => `<option value="${esc(t.name)}">`).join("")}</datalist>
      <input data-testid="selection-note" maxlength="10000" placeholder="note (for a saved selection)">
      <div class="row"><button type="submit" data-testid="tag-apply">Tag</button>
        <button type="button" data-testid="tag-untag" class="ghost">Untag</button>
        <button type="button" data-testid="selection-save" class="ghost">Save selection</button></div>
      <div class="hint" data-testid="tag-result"></div></form>`);
    const name = () => form.querySelector("[data-testid=tag-name]").value.trim();
    const done = (text) => { form.querySelector("[data-testid=tag-result]").textContent = text; };
    const run = (fn) => async (e) => {
      e?.preventDefault();
      if (!name()) { form.reportValidity(); return; }
      try { done(await fn(name())); await this.refresh(); } catch (err) { done(err.message); }
    };
    form.onsubmit = run(async (tag) => `${tag}: ${(await this.write("/api/tags", tag, what)).toLocaleString()} samples`);
    form.querySelector("[data-testid=tag-untag]").onclick = run(async (tag) =>
      `${tag}: ${(await this.write("/api/tags/remove", tag, what)).toLocaleString()} samples`);
    form.querySelector("[data-testid=selection-save]").onclick = run(async (sel) => {
      const note = form.querySelector("[data-testid=selection-note]").value;
      const saved = await this.save(sel, note, what);
      return `saved "${saved.name}" (${saved.count.toLocaleString()} samples)${title ? ` from ${title}` : ""}`;
    });
    panel.append(form);
  }

  /** Save ``what`` as the selection ``name``: a shape in one request (the server finds every
   * sample inside), ids in parts of at most MAX_IDS (the first creates it, the others append). */
  async save(name, note, what) {
    const parts = what.ids ? Array.from({ length: Math.max(1, Math.ceil(what.ids.length / MAX_IDS)) },
      (_, k) => ({ ids: what.ids.slice(k * MAX_IDS, (k + 1) * MAX_IDS) })) : [samplesBody(what)];
    const body = { name, note, samples: parts[0] };
    let saved;
    try { saved = await postJSON("/api/selections", body); } catch (err) {
      if (!String(err.message).startsWith("409") || !window.confirm(`Replace the saved selection "${name}"?`)) throw err;
      saved = await postJSON("/api/selections", { ...body, overwrite: true });
    }
    for (const samples of parts.slice(1)) saved = await postJSON("/api/selections", { name, note, samples, append: true });
    return saved;
  }

  /** Tag (or untag) ``what`` in requests of at most MAX_IDS ids; the tag's size after. */
  async write(url, tag, what) {
    let count = 0;
    if (!what.ids) return (await postJSON(url, { name: tag, samples: samplesBody(what) })).count;
    for (let i = 0; i < what.ids.length || i === 0; i += MAX_IDS) {
      count = (await postJSON(url, { name: tag, samples: { ids: what.ids.slice(i, i + MAX_IDS) } })).count;
    }
    if (this.ids.has(tag)) await this.column(tag, true);
    if ([state.color, state.ccol].includes(TAG + tag)) await this.ctx.map.restyle();
    return count;
  }

  /** Tag or save what the map shows now (its filters, legend value, insight). */
  fromShown() {
    const map = this.ctx.map;
    const visible = map.visibleMask();
    const ids = [];
    for (let r = 0; r < map.n; r++) if (visible[r]) ids.push(map.idOf(r));
    map.selection = { ids, title: "What the map shows" };
    map.restyle();
    map.showPanel();
  }

  /** Errors view: a bar to tag the samples of the chosen confusion cell. */
  renderCellBar() {
    const bar = this.cellBar;
    if (!bar) return;
    bar.innerHTML = "";
    if (state.view !== "errors" || state.tlabel === "" || state.tpred === "") return;
    const classes = this.ctx.classes;
    bar.append(el(`<div class="row"><span>Cell truth ${esc(classes[+state.tlabel] ?? state.tlabel)}, predicted ${esc(classes[+state.tpred] ?? state.tpred)}</span>
      <button class="ghost" data-testid="cell-tag">Tag or save these…</button></div>`));
    bar.querySelector("[data-testid=cell-tag]").onclick = async () => {
      const params = { label: state.tlabel, prediction: state.tpred, limit: "1000", sort: "sample_id" };
      if (state.tsubset !== "all") params.subset = state.tsubset;
      const ids = [];
      for (let offset = 0; ; offset += 1000) {
        const page = await getJSON(`/api/samples?${new URLSearchParams({ ...params, offset: String(offset) })}`);
        ids.push(...page.data.map((r) => r.sample_id));
        if (ids.length >= page.count || !page.data.length) break;
      }
      this.attach(bar, { ids }, "a confusion cell");
    };
  }
}

/** The ``samples`` of a request: ids, or a lasso/box with the map's server-side filters. */
function samplesBody(what) {
  if (what.ids) return { ids: what.ids };
  const filters = {};
  for (const [k, v] of Object.entries(what.filters || {})) {
    if (v === "" || v === null || v === undefined) continue;
    if (k === "ccol" && String(v).startsWith(TAG)) continue; // a tag column lives in the page only
    filters[k] = k === "fmin" || k === "fmax" ? +v : v;
  }
  if (!filters.ccol) delete filters.cval;
  return { polygon: what.shape, filters };
}

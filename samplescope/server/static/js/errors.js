// c. Error analysis: a confusion matrix per subset and a sortable, filterable table.

import { getJSON, imageUrl } from "./api.js";
import { fmt } from "./charts.js";
import { state, update } from "./state.js";
import { el, esc, options } from "./dom.js";
import { hasConfusion, renderTaskView, taskName, valueText } from "./taskviews.js";

const PAGE = 50;
const COLUMNS = [
  ["image", ""], ["sample_id", "id"], ["subset", "subset"], ["label", "label"],
  ["prediction", "prediction"], ["loss", "loss"], ["confidence", "confidence"], ["margin", "margin"],
];
// the last two columns per task (samplescope/tasks): what says how wrong a prediction is
const TASK_COLUMNS = {
  regression: [["residual", "residual"], ["abs_error", "|error|"]],
  multilabel: [["confidence", "confidence"], ["n_wrong", "wrong labels"]],
};

export class ErrorsView {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.q = (t) => root.querySelector(`[data-testid=${t}]`);
  }

  init() {
    const ctx = this.ctx, subsets = ctx.run.subsets.map((s) => s.name);
    const classes = ctx.classes.map((c, i) => [String(i), c]);
    options(this.q("confusion-subset"), subsets, this.confusionSubset());
    options(this.q("table-subset"), [["all", "all subsets"], ...subsets], state.tsubset);
    options(this.q("table-label"), [["", "any label"], ...classes], state.tlabel);
    options(this.q("table-prediction"), [["", "any prediction"], ...classes], state.tpred);
    const task = taskName(ctx);
    this.columns = TASK_COLUMNS[task] ? [...COLUMNS.slice(0, 6), ...TASK_COLUMNS[task]] : COLUMNS;
    if (task === "regression") {  // a number is no class to filter by
      this.q("table-label").hidden = true;
      this.q("table-prediction").hidden = true;
    }
    if (!hasConfusion(ctx)) {
      const head = this.root.querySelector(".confusion-card");
      head.querySelector("h2").textContent = task === "regression" ? "Predicted vs true" : "Per-label metrics";
      head.querySelector(".hint").textContent = task === "regression"
        ? "Each validation sample at its true and predicted value; red: an error. Beside it, the residuals."
        : "Precision, recall, F1 and average precision of every label.";
    }
    this.q("table-errors").checked = state.terr === "1";
    for (const s of this.root.querySelectorAll("select[data-key]")) {
      s.onchange = () => update({ [s.dataset.key]: s.value, tpage: "0" });
    }
    this.q("table-errors").onchange = (e) => update({ terr: e.target.checked ? "1" : "0", tpage: "0" });
    this.ready = true;
    this.renderConfusion();
    this.renderTable();
  }

  confusionSubset() {
    const names = this.ctx.run.subsets.map((s) => s.name);
    return state.esubset || (names.includes("validation") ? "validation" : names[0]);
  }

  onState(changed) {
    if (!this.ready) return;
    for (const s of this.root.querySelectorAll("select[data-key]")) {
      const key = s.dataset.key;
      s.value = key === "esubset" ? this.confusionSubset() : state[key];
    }
    this.q("table-errors").checked = state.terr === "1";
    if (changed.has("esubset")) this.renderConfusion();
    else if (changed.has("tlabel") || changed.has("tpred")) this.markCell();
    if (["tsubset", "tlabel", "tpred", "terr", "tsort", "torder", "tpage"].some((k) => changed.has(k))) this.renderTable();
  }

  async renderConfusion() {
    const subset = this.confusionSubset();
    if (!hasConfusion(this.ctx)) {  // the task's own view (taskviews.js)
      await renderTaskView(this.ctx, this.q("confusion"), this.q("metrics-line"), subset);
      return;
    }
    const [cm, metrics] = await Promise.all([
      getJSON(`/api/confusion?subset=${encodeURIComponent(subset)}`),
      getJSON(`/api/metrics?subset=${encodeURIComponent(subset)}`),
    ]);
    const m = cm.matrix, classes = cm.classes;
    const offMax = Math.max(1, ...m.flatMap((r, i) => r.filter((_, j) => j !== i)));
    const diagMax = Math.max(1, ...m.map((r, i) => r[i]));
    const table = el(`<table class="cm"><thead><tr><th></th>${classes.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody></tbody></table>`);
    m.forEach((row, i) => {
      const tr = el(`<tr><th>${esc(classes[i])}</th></tr>`);
      row.forEach((v, j) => {
        const t = i === j ? v / diagMax : Math.sqrt(v / offMax);
        const bg = i === j ? `rgba(79,70,229,${0.08 + 0.5 * t})` : v ? `rgba(224,49,49,${0.08 + 0.7 * t})` : "#f6f7f9";
        const td = el(`<td data-testid="confusion-cell" data-label="${i}" data-prediction="${j}" style="background:${bg};color:${t > 0.6 && i !== j ? "#fff" : "inherit"}" title="truth ${esc(classes[i])}, predicted ${esc(classes[j])}: ${v}">${v || ""}</td>`);
        td.onclick = () => update({ tlabel: String(i), tpred: String(j), tsubset: subset, terr: "0", tpage: "0" });
        tr.append(td);
      });
      table.tBodies[0].append(tr);
    });
    this.q("confusion").replaceChildren(table);
    this.q("metrics-line").textContent =
      `${subset}: accuracy ${(100 * metrics.accuracy).toFixed(2)}% · mean loss ${fmt(metrics.mean_loss)}`;
    this.markCell();
  }

  markCell() {
    for (const td of this.root.querySelectorAll("[data-testid=confusion-cell]")) {
      td.classList.toggle("picked", td.dataset.label === state.tlabel && td.dataset.prediction === state.tpred);
    }
  }

  async renderTable() {
    const p = new URLSearchParams({ sort: state.tsort, order: state.torder, limit: PAGE, offset: +state.tpage * PAGE });
    if (state.tsubset !== "all") p.set("subset", state.tsubset);
    const multi = taskName(this.ctx) === "multilabel";  // a set of labels: filter one label's column
    if (state.tlabel !== "") p.set(multi ? `label_${state.tlabel}` : "label", multi ? "true" : state.tlabel);
    if (state.tpred !== "") p.set(multi ? `pred_${state.tpred}` : "prediction", multi ? "true" : state.tpred);
    const extra = this.columns.map(([k]) => k).filter((k) => !COLUMNS.some(([c]) => c === k));
    if (extra.length) p.set("columns", extra.join(","));
    if (state.terr === "1") p.set("correct", "false");
    const res = await getJSON(`/api/samples?${p}`);
    const classes = this.ctx.classes;
    const table = this.q("loss-table");
    const columns = this.columns, [c6, c7] = columns.slice(6).map(([k]) => k);
    table.tHead.innerHTML = `<tr>${columns.map(([k, name]) =>
      `<th data-sort="${k}" class="${state.tsort === k ? "sorted " + state.torder : ""}">${name}</th>`).join("")}</tr>`;
    table.tHead.querySelectorAll("th").forEach((th) => {
      if (th.dataset.sort === "image") return;
      th.onclick = () => update({
        tsort: th.dataset.sort, tpage: "0",
        torder: state.tsort === th.dataset.sort && state.torder === "desc" ? "asc" : "desc",
      });
    });
    table.tBodies[0].innerHTML = res.data.map((r) => `<tr data-testid="loss-row" data-sample-id="${r.sample_id}">
      <td><img src="${imageUrl(r.sample_id)}" alt="" loading="lazy"></td><td>${r.sample_id}</td><td>${esc(r.subset)}</td>
      <td>${esc(valueText(this.ctx, r.label))}</td><td class="${r.correct ? "" : "wrong"}">${esc(valueText(this.ctx, r.prediction))}</td>
      <td>${fmt(r.loss)}</td><td>${fmt(r[c6])}</td><td>${fmt(r[c7])}</td></tr>`).join("");
    table.tBodies[0].querySelectorAll("tr").forEach((tr) => {
      tr.onclick = () => update({ sample: tr.dataset.sampleId }, { push: true });
    });
    table.dataset.count = res.count;
    const title = state.tlabel !== "" || state.tpred !== ""
      ? `Samples: truth ${state.tlabel === "" ? "any" : classes[+state.tlabel]}, predicted ${state.tpred === "" ? "any" : classes[+state.tpred]}`
      : "Highest-loss samples";
    this.q("table-title").textContent = title;
    const page = +state.tpage, pages = Math.max(1, Math.ceil(res.count / PAGE));
    const pager = this.q("pager");
    pager.innerHTML = `<button data-testid="page-prev" ${page ? "" : "disabled"}>‹ prev</button>
      <span>page ${page + 1} of ${pages} · ${res.count.toLocaleString()} samples</span>
      <button data-testid="page-next" ${page + 1 < pages ? "" : "disabled"}>next ›</button>`;
    pager.querySelector("[data-testid=page-prev]").onclick = () => update({ tpage: String(page - 1) });
    pager.querySelector("[data-testid=page-next]").onclick = () => update({ tpage: String(page + 1) });
  }
}

// e. Insights: cards, most severe first; a click filters the map and grid to the card's samples.

import { state, update } from "./state.js";
import { el, esc, thumbs } from "./dom.js";
import { className, formatNumber } from "./format.js";

export class InsightsView {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
  }

  async init() {
    const cards = await this.ctx.insights();
    const list = this.root.querySelector("[data-testid=insight-list]");
    list.innerHTML = cards.length ? "" : `<div class="hint">The analysis found nothing to flag.</div>`;
    for (const card of cards) {
      const sev = level(card.severity);
      const node = el(`<article class="insight sev-${esc(sev)}" data-testid="insight-card" data-insight-id="${card.id}"
          data-count="${card.count}" data-shown="${card.sample_ids.length}" tabindex="0">
        <div class="meta"><span class="tag">${esc(card.kind.replaceAll("_", " "))}</span>
          <span data-testid="insight-severity">${esc(sev)}${typeof card.severity === "number" ? ` (${card.severity.toFixed(2)})` : ""}</span>
          <span>${card.count.toLocaleString()} samples${card.sample_ids.length < card.count
            ? ` (a click shows the ${card.sample_ids.length.toLocaleString()} most relevant)` : ""}</span></div>
        <h2>${esc(card.title || card.kind)}</h2><p>${esc(card.text || "")}</p>${todo(card, this.ctx.classes)}</article>`);
      node.append(thumbs(card.sample_ids.slice(0, 8).map((id) => ({ id })), this.ctx.classes,
        (id) => update({ sample: id }, { push: true })));
      const open = (e) => {
        if (e.target.closest(".thumb")) return;
        update({ view: "map", insight: card.id, subset: "all", fmin: "", fmax: "", cval: "" }, { push: true });
      };
      node.onclick = open;
      node.onkeydown = (e) => { if (e.key === "Enter") open(e); };
      list.append(node);
    }
    this.ready = true;
  }

  onState() { /* static once drawn */ }
}

const VERBS = { relabel: "Relabel", remove_duplicates: "Remove duplicates", collect: "Collect more", watch: "Watch" };

/** What the insight says to do, and the population test that would catch it again
 *  (a samplescope test check: `samplescope test RUN --suggest` writes it). */
function todo(card, classes) {
  const act = card.details?.action;
  if (!act) return "";
  const test = act.test ? `<div class="insight-test" data-testid="insight-test" title="samplescope test RUN --suggest writes this check">
      test: ${esc(population(act.test, classes))} ${esc(act.test.metric.replaceAll("_", " "))} ${esc(act.test.op)} ${esc(formatNumber(act.test.threshold))}</div>` : "";
  return `<div class="insight-action" data-testid="insight-action"><span class="tag">${esc(VERBS[act.verb] ?? act.verb)}</span>
    ${esc(act.text)}</div>${test}`;
}

/** A check's population in words: subset, classes (by name), metadata conditions. */
function population(t, classes) {
  const parts = [];
  if (t.subset) parts.push(t.subset);
  if (t.classes?.length) parts.push(`class ${t.classes.map((c) => (typeof c === "number" ? className(classes, c) : c)).join(", ")}`);
  for (const [col, cond] of Object.entries(t.where ?? {})) {
    if (cond && typeof cond === "object" && !Array.isArray(cond)) {
      if (cond.min !== undefined && cond.min !== null) parts.push(`${col} ≥ ${formatNumber(cond.min)}`);
      if (cond.max !== undefined && cond.max !== null) parts.push(`${col} ≤ ${formatNumber(cond.max)}`);
    } else parts.push(`${col} = ${Array.isArray(cond) ? cond.join("/") : cond}`);
  }
  if (t.cluster !== undefined) parts.push(`cluster ${t.cluster}`);
  return parts.length ? `${parts.join(", ")}:` : "all samples:";
}

/** Severity as a word: numbers in [0, 1] become high / medium / low (docs/concepts.md, "One severity scale"). */
function level(severity) {
  if (typeof severity !== "number") return String(severity ?? "").toLowerCase();
  // high: accounts for >= 10% of the errors, medium: >= 5% (saturate(0.05, 0.1) = 1/3)
  return severity >= 0.5 ? "high" : severity >= 1 / 3 ? "medium" : "low";
}

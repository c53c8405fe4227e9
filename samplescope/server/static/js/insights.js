// e. Insights: cards, most severe first; a click filters the map and grid to the card's samples.

import { state, update } from "./state.js";
import { el, esc, thumbs } from "./dom.js";

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
          data-count="${card.count}" tabindex="0">
        <div class="meta"><span class="tag">${esc(card.kind.replaceAll("_", " "))}</span>
          <span data-testid="insight-severity">${esc(sev)}${typeof card.severity === "number" ? ` (${card.severity.toFixed(2)})` : ""}</span>
          <span>${card.count.toLocaleString()} samples</span></div>
        <h2>${esc(card.title || card.kind)}</h2><p>${esc(card.text || "")}</p></article>`);
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

/** Severity as a word: numbers in [0, 1] become high / medium / low. */
function level(severity) {
  if (typeof severity !== "number") return String(severity ?? "").toLowerCase();
  return severity >= 0.5 ? "high" : severity >= 0.2 ? "medium" : "low";
}

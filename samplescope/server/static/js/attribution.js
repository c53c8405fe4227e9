// Attributions in the sample view: which methods apply to the run (and why the others do not),
// images' heatmap overlays that show the server's message when they fail, and vectors' and
// tokens' attributions drawn as signed bars / coloured tokens from heatmap.json.

import palette from "../palette.json" with { type: "json" };
import { esc } from "./dom.js";
import { fmt } from "./charts.js";

export const METHODS = [["gradcam", "Grad-CAM"], ["integrated_gradients", "Integrated Gradients"], ["saliency", "Saliency"]];
const NAME = Object.fromEntries(METHODS);
const TOP = 12; // bars shown for a vector: the features with the largest |attribution|

/** {method: null | reason} from /api/run; an older server sends none: every method then applies. */
export const reasons = (run) => run.attribution || {};
export const applies = (run, m) => !reasons(run)[m];

/** The method to draw: the chosen one if it applies, else the first that does. */
export function methodFor(run, chosen) {
  if (applies(run, chosen)) return chosen;
  return (METHODS.find(([m]) => applies(run, m)) || METHODS[0])[0];
}

/** Buttons for the methods: those that do not apply are disabled, and a note says why. */
export function methodButtons(run) {
  const buttons = METHODS.map(([m, name]) => {
    const why = reasons(run)[m];
    return `<button data-method="${m}" data-testid="method-${m}"${why ? ` disabled title="${esc(why)}"` : ""}>${name}</button>`;
  }).join("");
  const notes = METHODS.filter(([m]) => reasons(run)[m]).map(([m, name]) => `${name}: ${esc(reasons(run)[m])}.`);
  const note = notes.length ? `<div class="hint" data-testid="method-why">${notes.join(" ")}</div>` : "";
  return { buttons, note };
}

/** A failed heatmap PNG: ask the same URL for its JSON error and show it in place of a broken image. */
export async function explainFailure(img, box) {
  let message = "the heatmap could not be made";
  try {
    const response = await fetch(img.src);
    if (!response.ok) message = (await response.json()).detail || `${response.status} ${response.statusText}`;
  } catch { /* keep the generic message */ }
  img.hidden = true;
  box.hidden = false;
  box.textContent = message;
}

const colour = (v) => (v >= 0 ? palette.positive : palette.negative);

/** Signed bars, one per feature (the TOP largest by |value|), or tokens shaded by their value. */
export function drawAttribution(box, heat, kind) {
  const values = heat.values, labels = heat.labels || values.map((_, i) => `#${i}`);
  const max = Math.max(...values.map((v) => Math.abs(v)), 1e-12);
  box.dataset.method = heat.method;
  if (kind === "tokens") {  // in the sentence's order, padding (heat.padding) left out
    const shown = labels.map((t, i) => i).filter((i) => !(heat.padding && heat.padding[i]));
    box.innerHTML = `<div class="tokens">${shown.map((i) => {
      const t = labels[i];
      const a = Math.min(1, Math.abs(values[i]) / max);
      return `<span class="token" data-testid="attr-token" title="${fmt(values[i])}" style="background:${colour(values[i])}${
        Math.round(a * 200).toString(16).padStart(2, "0")}">${esc(t)}</span>`;
    }).join(" ")}</div>`;
    return;
  }
  const order = values.map((v, i) => i).sort((a, b) => Math.abs(values[b]) - Math.abs(values[a])).slice(0, TOP);
  box.innerHTML = `<div class="signed-bars">${order.map((i) => {
    const w = (50 * Math.abs(values[i])) / max;
    const side = values[i] >= 0 ? `left:50%` : `right:50%`;
    return `<div class="sbar" data-testid="attr-bar" data-feature="${esc(labels[i])}" data-value="${values[i]}">
      <span class="name" title="${esc(labels[i])}">${esc(labels[i])}</span>
      <span class="strack"><span class="sfill" style="${side};width:${w.toFixed(1)}%;background:${colour(values[i])}"></span></span>
      <span class="val">${fmt(values[i])}</span></div>`;
  }).join("")}</div>${values.length > TOP ? `<div class="hint">top ${TOP} of ${values.length} features by |${esc(NAME[heat.method] || heat.method)}|</div>` : ""}`;
}

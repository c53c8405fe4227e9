// Tiny DOM helpers.

import { imageUrl } from "./api.js";
import { fmt } from "./charts.js";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);

/** One element from an HTML string. */
export function el(html) {
  const t = document.createElement("template");
  t.innerHTML = html.trim();
  return t.content.firstElementChild;
}

/**
 * A grid of thumbnails. items: [{id, label?, prediction?, loss?, similarity?}]; onClick(id).
 * Each tile has data-testid="thumb" (or testid) and data-sample-id; under the picture one
 * line per fact, each number labelled ("loss 0.012", "sim 0.953"), cut with an ellipsis
 * rather than run into the next tile (the tile's title has them all).
 */
export function thumbs(items, classes, onClick, testid = "thumb") {
  const grid = el(`<div class="thumbs"></div>`);
  for (const it of items) {
    const name = (c) => (c === null || c === undefined ? "–"
      : typeof c === "number" && !Number.isInteger(c) ? fmt(c) : classes[c] ?? String(c));
    // `correct` is the task's word on an error (a regression prediction never equals its label)
    const wrong = it.label !== undefined && (it.correct !== undefined ? !it.correct : it.label !== it.prediction);
    const lines = [];
    if (it.label === undefined) lines.push(["id", `#${it.id}`]);
    else lines.push(["classes", `${name(it.label)}→${name(it.prediction)}`, wrong ? "wrong" : ""]);
    if (it.loss !== undefined) lines.push(["loss", `loss ${fmt(it.loss)}`]);
    if (it.similarity !== undefined) lines.push(["similarity", `sim ${it.similarity === null ? "–" : it.similarity.toFixed(3)}`]);
    const title = [`#${it.id}`, ...lines.slice(it.label === undefined ? 1 : 0).map((l) => l[1])].join(" · ");
    const tile = el(`<div class="thumb" data-testid="${testid}" data-sample-id="${it.id}" title="${esc(title)}">
      <img src="${imageUrl(it.id)}" alt="sample ${it.id}" loading="lazy">${lines.map(([k, text, cls = ""]) =>
        `<span class="cap ${cls}" data-testid="thumb-${k}">${esc(text)}</span>`).join("")}</div>`);
    tile.onclick = () => onClick(it.id);
    grid.appendChild(tile);
  }
  return grid;
}

export function options(select, items, value) {
  // items: [[value, label]] or [value]
  select.innerHTML = items.map((it) => {
    const [v, label] = Array.isArray(it) ? it : [it, it];
    return `<option value="${esc(v)}">${esc(label)}</option>`;
  }).join("");
  select.value = value;
}

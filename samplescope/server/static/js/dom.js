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
 * A grid of thumbnails. items: [{id, label?, prediction?, loss?}]; onClick(id).
 * Each tile has data-testid="thumb" (or testid) and data-sample-id.
 */
export function thumbs(items, classes, onClick, testid = "thumb") {
  const grid = el(`<div class="thumbs"></div>`);
  for (const it of items) {
    const name = (c) => (c === null || c === undefined ? "" : classes[c] ?? c);
    const wrong = it.label !== undefined && it.label !== it.prediction;
    const caption = it.label === undefined ? `#${it.id}`
      : `<span class="${wrong ? "wrong" : ""}">${esc(name(it.label))}→${esc(name(it.prediction))}</span> · ${fmt(it.loss)}`;
    const tile = el(`<div class="thumb" data-testid="${testid}" data-sample-id="${it.id}" title="#${it.id}">
      <img src="${imageUrl(it.id)}" alt="sample ${it.id}" loading="lazy"><span>${caption}</span></div>`);
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

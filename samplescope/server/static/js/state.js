// The page's state lives in the URL hash, so a reload or a shared link restores the view.
// Keys equal to their default are left out of the hash.

export const DEFAULTS = {
  view: "map",
  // map
  color: "label", size: "", subset: "all", fcol: "", fmin: "", fmax: "", ccol: "", cval: "",
  insight: "", tool: "pan",
  // sample drawer
  sample: "", method: "gradcam", opacity: "0.65", t1: "", t2: "", k: "12",
  // errors
  esubset: "", cell: "", tsubset: "all", tlabel: "", tpred: "", terr: "1", tsort: "loss",
  torder: "desc", tpage: "0",
  // dashboard
  x: "dist_to_gt_centroid", y: "loss", by: "", dsubset: "all", bins: "10", hx: "epoch",
};

export const state = read();
const listeners = new Set();

function read() {
  const params = new URLSearchParams(location.hash.slice(1));
  const out = { ...DEFAULTS };
  for (const [k, v] of params) if (k in DEFAULTS) out[k] = v;
  return out;
}

function hashOf(s) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(s)) if (v !== DEFAULTS[k] && v !== undefined) params.set(k, v);
  return "#" + params.toString();
}

/** Change some keys, write the hash, tell every listener which keys changed. */
export function update(patch, { push = false } = {}) {
  const changed = new Set();
  for (const [k, v] of Object.entries(patch)) {
    const value = v === null || v === undefined ? DEFAULTS[k] : String(v);
    if (state[k] !== value) { state[k] = value; changed.add(k); }
  }
  if (!changed.size) return;
  const hash = hashOf(state);
  if (push) history.pushState(null, "", hash); else history.replaceState(null, "", hash);
  notify(changed);
}

export function subscribe(fn) { listeners.add(fn); }

function notify(changed) { for (const fn of listeners) fn(changed); }

window.addEventListener("hashchange", () => {
  const next = read();
  const changed = new Set(Object.keys(next).filter((k) => next[k] !== state[k]));
  Object.assign(state, next);
  if (changed.size) notify(changed);
});
window.addEventListener("popstate", () => window.dispatchEvent(new HashChangeEvent("hashchange")));

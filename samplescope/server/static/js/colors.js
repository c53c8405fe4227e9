// Palettes: categorical (palette.json, which the static report reads too, so class k has one
// colour in both) and a continuous viridis ramp.

import palette from "../palette.json" with { type: "json" };

export const PALETTE = palette.categorical;
export const MISSING = palette.missing;
export const CORRECT = { true: "#9db4c8", false: "#e03131" };

const VIRIDIS = [
  [68, 1, 84], [72, 36, 117], [65, 68, 135], [53, 95, 141], [42, 120, 142], [33, 145, 140],
  [34, 168, 132], [68, 191, 112], [122, 209, 81], [189, 223, 38], [253, 231, 37],
];

export function hexToRgb(hex) {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

export function categoryColor(i) {
  return PALETTE[i % PALETTE.length];
}

/** t in [0, 1] -> [r, g, b] */
export function ramp(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i], b = VIRIDIS[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

export const rampCss = () =>
  `linear-gradient(90deg, ${VIRIDIS.map((c, i) => `rgb(${c}) ${(i / (VIRIDIS.length - 1)) * 100}%`).join(",")})`;

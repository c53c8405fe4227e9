// Numbers as people read them in tables: integers exact, floats to four significant digits,
// class indices by class name. (charts.js's fmt is the short form for axes and bars.)

const MISSING = "–";

/** An integer exactly as the API sent it; a float to four significant digits (exponent when tiny or huge). */
export function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return MISSING;
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e15 || a < 1e-4) return v.toExponential(3);
  // digits after the point for four significant ones, at least one so a float never reads as an integer
  const decimals = Math.max(1, 4 - (Math.floor(Math.log10(a)) + 1));
  return v.toFixed(decimals).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, ".0");
}

/** A class index as its class name ("–" when missing, the index itself when out of range). */
export function className(classes, v) {
  if (v === null || v === undefined || v === "") return MISSING;
  return classes[v] ?? String(v);
}

/** One cell of the sample's metadata table: class columns by name, numbers by formatNumber. */
export function formatCell(column, v, classes, classColumns) {
  if (classColumns.has(column)) return className(classes, v);
  if (typeof v === "number") return formatNumber(v);
  return v === null || v === undefined ? MISSING : String(v);
}

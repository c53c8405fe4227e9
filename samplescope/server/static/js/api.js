// Talking to the server: JSON helpers and the binary map payload decoder.

export class ApiError extends Error {}

export async function getJSON(url, options) {
  const response = await fetch(url, options);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch { /* not JSON */ }
    throw new ApiError(`${response.status}: ${detail}`);
  }
  return response.json();
}

export const postJSON = (url, body) => getJSON(url, {
  method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
});

// A run whose code is not trusted has no sample images (the integration draws them):
// the page shows this placeholder instead of asking for each one and getting 403.
const NO_IMAGE = "data:image/svg+xml," + encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 28 28"><rect width="28" height="28" fill="#eee"/>' +
  '<path d="M6 6L22 22M22 6L6 22" stroke="#bbb" stroke-width="1.5"/></svg>');
let imagesOn = true;
export const setImagesOn = (on) => { imagesOn = Boolean(on); };
export const imageUrl = (id) => (imagesOn ? `/api/samples/${id}/image.png` : NO_IMAGE);

const TYPES = { float32: Float32Array, uint8: Uint8Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array };

/** Fetch /api/map and decode it: { n, header, columns: {name: {kind, values, categories?, min?, max?}} }. */
export async function fetchMap(params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  const response = await fetch(`/api/map${query ? "?" + query : ""}`);
  if (!response.ok) throw new ApiError(`map: ${response.status}`);
  return decodeMap(await response.arrayBuffer());
}

/** Fetch /api/map/viewport: every sample in a rectangle (header.total, header.complete). */
export async function fetchViewport(params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)).toString();
  const response = await fetch(`/api/map/viewport?${query}`);
  if (!response.ok) throw new ApiError(`viewport: ${response.status}`);
  return decodeMap(await response.arrayBuffer());
}

export function decodeMap(buffer) {
  const view = new DataView(buffer);
  const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
  if (magic !== "SSM1") throw new ApiError(`not a map payload (${magic})`);
  const length = view.getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, length)));
  const base = 8 + length;
  const columns = {};
  for (const [name, c] of Object.entries(header.columns)) {
    columns[name] = { ...c, values: new TYPES[c.dtype](buffer, base + c.offset, header.n) };
  }
  return { n: header.n, header, columns, bytes: buffer.byteLength };
}

/** Missing code of a categorical column's dtype. */
export const missingCode = (c) => ({ uint8: 255, uint16: 65535, int32: -1 })[c.dtype];

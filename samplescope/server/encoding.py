"""Byte encodings the server sends: the columnar map payload and PNG pictures.

The map payload is what the page's scatter plot reads in one request::

    b"SSM1" | uint32 LE header length | header JSON (space padded) | arrays

Every array is little-endian and holds one value per sample in ``sample_id``
order. The header says, per column, its ``dtype`` (float32, uint8, uint16,
int32, uint32), ``offset`` (bytes from the start of the arrays, which begin at
``8 + header length``, a multiple of 8; every offset is a multiple of 4), ``kind``
(numeric, categorical, bool) and, for codes, the ``categories`` they index (the
missing code is the dtype's maximum, 255 / 65535, or -1 for int32). Numeric
columns are float32 with NaN for missing and carry ``min`` / ``max``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from samplescope.palette import heatmap_stops, palette, rgb

MAGIC = b"SSM1"
ColumnKind = Literal["numeric", "categorical", "bool"]


# --- the map payload ------------------------------------------------------------------------


def encode_column(
    values: pd.Series, kind: ColumnKind, categories: Sequence[str] | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """One column as a typed array and its header entry.

    ``categories`` fixes the code of each value for integer columns whose
    values are indices already (label, prediction: the class names).
    """
    if kind == "numeric":
        arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype="<f4", na_value=np.nan)
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (None, None)
        return arr, {"kind": kind, "dtype": "float32", "min": lo, "max": hi}
    if kind == "bool":
        missing = values.isna().to_numpy()
        arr = np.where(missing, 255, values.fillna(False).astype(bool).to_numpy()).astype("u1")
        return arr, {"kind": kind, "dtype": "uint8", "categories": ["false", "true"]}
    missing = values.isna().to_numpy()
    if categories is not None:
        codes = np.where(missing, -1, values.fillna(-1).to_numpy()).astype(np.int64)
        cats = list(categories)
    else:
        cats_index = pd.Index(pd.unique(values.dropna()))
        try:
            cats_index = cats_index.sort_values()
        except TypeError:
            pass
        codes = np.asarray(cats_index.get_indexer(values), dtype=np.int64)
        cats = [str(c) for c in cats_index]
    n = len(cats)
    dtype, missing_code = ("u1", 255) if n < 255 else ("<u2", 65535) if n < 65535 else ("<i4", -1)
    codes = np.where((codes < 0) | (codes >= n), missing_code, codes).astype(dtype)
    name = {"u1": "uint8", "<u2": "uint16", "<i4": "int32"}[dtype]
    return codes, {"kind": "categorical", "dtype": name, "categories": cats}


def pack_columns(
    arrays: Mapping[str, tuple[np.ndarray, dict[str, Any]]], n: int, meta: Mapping[str, Any]
) -> bytes:
    """Lay columns out after a JSON header; see the module docstring."""
    columns: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, (arr, entry) in arrays.items():
        columns[name] = {**entry, "offset": offset}
        offset += _aligned(arr.nbytes)
    header = {"format": "samplescope-map", "version": 1, "n": n, **meta, "columns": columns}
    raw = _header_bytes(header)
    out = io.BytesIO()
    out.write(MAGIC)
    out.write(np.uint32(len(raw)).astype("<u4").tobytes())
    out.write(raw)
    for arr, _ in arrays.values():
        data = np.ascontiguousarray(arr).tobytes()
        out.write(data)
        out.write(b"\0" * (_aligned(len(data)) - len(data)))
    return out.getvalue()


def decode_map(payload: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The inverse of :func:`pack_columns` (used by tests and the benchmark)."""
    if payload[:4] != MAGIC:
        raise ValueError(f"not a samplescope map payload: starts with {payload[:4]!r}")
    length = int(np.frombuffer(payload, "<u4", 1, 4)[0])
    header = json.loads(payload[8 : 8 + length])
    base = 8 + length
    dtypes = {"float32": "<f4", "uint8": "u1", "uint16": "<u2", "int32": "<i4", "uint32": "<u4"}
    arrays = {
        name: np.frombuffer(payload, dtypes[c["dtype"]], header["n"], base + c["offset"])
        for name, c in header["columns"].items()
    }
    return header, arrays


def _header_bytes(header: Mapping[str, Any]) -> bytes:
    raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    return raw + b" " * (_aligned(8 + len(raw), 8) - 8 - len(raw))


def _aligned(n: int, to: int = 4) -> int:
    return (n + to - 1) // to * to


# --- pictures -------------------------------------------------------------------------------

# The heatmap colours of palette.json (shared with the report): perceptually ordered
# (inferno-like) stops for one-signed maps, red/blue for signed ones.
_SEQUENTIAL = heatmap_stops()
_POSITIVE = rgb(palette()["positive"])
_NEGATIVE = rgb(palette()["negative"])


def png_bytes(image: np.ndarray) -> bytes:
    """A (H, W), (H, W, 3) or (H, W, 4) uint8 array as PNG."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=False, compress_level=3)
    return buf.getvalue()


def heatmap_rgba(heatmap: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A heatmap as a coloured overlay with alpha, (H, W, 4) uint8.

    One-signed maps (Grad-CAM, saliency) are stretched to [0, 1] and use a
    sequential scale whose opacity grows with the value (the weakest pixel is
    clear); signed maps (integrated gradients) use red for positive and blue
    for negative evidence.
    """
    h = np.nan_to_num(np.asarray(heatmap, dtype=np.float32))
    if shape is not None and h.shape != tuple(shape):
        h = _resize(h, shape)
    rgba = np.zeros((*h.shape, 4), dtype=np.float32)
    if float(h.min()) < -1e-3 * (float(np.abs(h).max()) or 1.0):
        v = h / (float(np.abs(h).max()) or 1.0)  # (H, W) in [-1, 1]
        rgba[..., :3] = np.where((v >= 0)[..., None], _POSITIVE, _NEGATIVE)
        rgba[..., 3] = np.abs(v) ** 0.75 * 235
    else:
        lo, hi = float(h.min()), float(h.max())
        v = (h - lo) / (hi - lo) if hi > lo else np.zeros_like(h)  # (H, W) in [0, 1]
        pos = v * (len(_SEQUENTIAL) - 1)
        i = np.minimum(pos.astype(int), len(_SEQUENTIAL) - 2)
        t = (pos - i)[..., None]
        rgba[..., :3] = _SEQUENTIAL[i] * (1 - t) + _SEQUENTIAL[i + 1] * t
        rgba[..., 3] = v**1.5 * 225
    return np.clip(rgba, 0, 255).astype(np.uint8)


def _resize(h: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(h.astype(np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), dtype=np.float32)

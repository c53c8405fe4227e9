"""A picture of a sample for people when the integration declares no visualizer.

An image is shown as it is; a vector as a feature table (name and value, one row
per feature); token ids as the text they spell (padding, id 0, left out). The
table and text are drawn with Pillow's built-in font, so every place that shows a
sample's picture (the page, its thumbnails, the report) works for every input kind.
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np

#: at most this many feature rows in a table picture (the rest are counted in a last row)
MAX_ROWS = 40
#: characters per line of a tokens picture
LINE = 48


def default_picture(kind: str, x: np.ndarray, spec: Any) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 for one encoded input ``x`` of input kind ``kind``."""
    from samplescope.integration.core import to_uint8_image

    if kind == "vector":
        names = list(spec.feature_names or (f"x{i}" for i in range(len(x))))
        return feature_table(names, np.asarray(x, dtype=np.float64))
    if kind == "tokens":
        return token_text(np.asarray(x), list(spec.vocabulary or ()))
    return to_uint8_image(x)


def feature_table(names: list[str], values: np.ndarray) -> np.ndarray:
    """Rows of ``name  value`` as a grey picture."""
    rows = [(n, f"{v:.4g}") for n, v in zip(names, values, strict=False)]
    if len(rows) > MAX_ROWS:
        rows = rows[: MAX_ROWS - 1] + [(f"... {len(rows) - MAX_ROWS + 1} more", "")]
    return _text_picture([list(r) for r in rows])


def token_text(ids: np.ndarray, vocabulary: list[str]) -> np.ndarray:
    """The tokens ``ids`` spell (id 0, padding, left out), wrapped, as a grey picture."""
    words = [vocabulary[i] if 0 <= i < len(vocabulary) else f"<{i}>" for i in ids.astype(np.int64) if i != 0]
    lines = textwrap.wrap(" ".join(words), LINE) or ["(empty)"]
    return _text_picture([[line] for line in lines[:MAX_ROWS]])


def _text_picture(rows: list[list[str]]) -> np.ndarray:
    """Rows of cells, each column left-aligned at its own x, black on white."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    line_h, pad, gap = 12, 4, 12
    columns = max(len(r) for r in rows)
    widths = [max(int(probe.textlength(r[c], font=font)) for r in rows if c < len(r)) for c in range(columns)]
    starts = [pad + sum(widths[:c]) + gap * c for c in range(columns)]
    img = Image.new("L", (max(starts[-1] + widths[-1] + pad, 16), line_h * len(rows) + 2 * pad), 255)
    draw = ImageDraw.Draw(img)
    for i, row in enumerate(rows):
        for c, cell in enumerate(row):
            draw.text((starts[c], pad + i * line_h), cell, fill=0, font=font)
    return np.asarray(img, dtype=np.uint8)

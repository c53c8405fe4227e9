"""A picture of a sample for people when the integration declares no visualizer.

An image is shown as it is; a vector as a feature profile (below); token ids as
the text they spell (padding, id 0, left out). Everything is drawn with Pillow's
built-in font, so every place that shows a sample's picture (the page, its
thumbnails, the report) works for every input kind.

A vector's picture has to read at thumbnail size (the page's grids show it at 32
to 100 pixels) as well as in the sample view, so it is not a table of every value
(30 rows of 11-pixel text shrank to an unreadable grey patch). It is:

* a strip of signed bars, one per feature in the input's order: how many training
  standard deviations the value lies above (red) or below (blue) the training mean,
  clipped at 3; the same shape means a similar sample, even in a 32-pixel thumbnail;
* the features furthest from typical, largest ``|z|`` first, in a large font: name,
  value and ``z`` (``+2.4 sd``).
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np

#: at most this many lines in a tokens picture
MAX_ROWS = 12
#: characters per line of a tokens picture
LINE = 24
#: features named under a vector's bar strip (largest |z| first)
TOP_FEATURES = 5
#: a vector picture's side (it is square: no letterbox in the page's square thumbnails) and its
#: bar strip's height, in pixels; z is clipped at +-Z_CLIP
WIDTH, STRIP, Z_CLIP = 240, 99, 3.0
#: the margin around a vector picture's parts, in pixels
PAD = 6


def default_picture(kind: str, x: np.ndarray, spec: Any, stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 for one encoded input ``x`` of input kind ``kind``.

    ``stats``: a vector input's training (mean, std) per feature, which the picture's z-scores
    are measured against (None: against the sample's own largest value).
    """
    from samplescope.integration.core import to_uint8_image

    if kind == "vector":
        names = list(spec.feature_names or (f"x{i}" for i in range(len(x))))
        return feature_profile(names, np.asarray(x, dtype=np.float64), stats)
    if kind == "tokens":
        return token_text(np.asarray(x), list(spec.vocabulary or ()))
    return to_uint8_image(x)


def z_scores(values: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """How many training standard deviations each value lies from the training mean (a constant
    feature: 0); without ``stats``, each value over the largest |value|, times ``Z_CLIP``."""
    if stats is None:
        top = float(np.max(np.abs(values), initial=0.0)) or 1.0
        return values / top * Z_CLIP
    mean, std = (np.asarray(a, dtype=np.float64) for a in stats)
    return np.where(std > 0, (values - mean) / np.where(std > 0, std, 1.0), 0.0)


def top_features(z: np.ndarray, k: int = TOP_FEATURES) -> list[int]:
    """The ``k`` features furthest from typical, largest |z| first (ties: the input's order)."""
    return [int(i) for i in np.argsort(-np.abs(z), kind="stable")[:k]]


def feature_profile(names: list[str], values: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """(WIDTH, WIDTH, 3) uint8: the signed bar strip of every feature's z, then the top features by |z|."""
    from PIL import Image, ImageDraw

    from samplescope.palette import palette

    colours = palette()
    z = z_scores(values, stats)
    top = top_features(z)
    font = _font(15)
    pad, line_h = PAD, 21
    img = Image.new("RGB", (WIDTH, max(WIDTH, pad + STRIP + pad + line_h * len(top) + pad)), "white")
    draw = ImageDraw.Draw(img)
    # the strip: one bar per feature (at most one pixel column each past WIDTH features)
    shown = min(len(z), WIDTH - 2 * pad)  # past that many, the first ones
    step = (WIDTH - 2 * pad) / max(shown, 1)
    mid = pad + STRIP / 2
    draw.rectangle([pad, pad, WIDTH - pad - 1, pad + STRIP], fill="#f3f4f6")
    for i in range(shown):
        h = float(np.clip(z[i], -Z_CLIP, Z_CLIP)) / Z_CLIP * (STRIP / 2 - 1)
        x0 = pad + i * step
        x1 = max(x0 + step - (1 if step >= 3 else 0), x0 + 1) - 1
        draw.rectangle([x0, min(mid, mid - h), x1, max(mid, mid - h)],
                       fill=colours["positive"] if z[i] >= 0 else colours["negative"])  # fmt: skip
    draw.line([pad, mid, WIDTH - pad - 1, mid], fill="#6b7280")
    # the features furthest from typical
    y = pad + STRIP + pad
    for i in top:
        zt = f"{z[i]:+.1f} sd" if stats is not None else ""
        value = f"{values[i]:.4g}"
        right = WIDTH - pad - (int(draw.textlength(zt, font=font)) + 6 if zt else 0)
        left = right - draw.textlength(value, font=font)
        draw.text((pad, y), _fit(draw, names[i], font, left - pad - 6), fill="black", font=font)
        draw.text((left, y), value, fill="#374151", font=font)
        if zt:
            draw.text((WIDTH - pad - draw.textlength(zt, font=font), y), zt, font=font,
                      fill=colours["positive"] if z[i] >= 0 else colours["negative"])  # fmt: skip
        y += line_h
    return np.asarray(img, dtype=np.uint8)


def token_text(ids: np.ndarray, vocabulary: list[str]) -> np.ndarray:
    """The tokens ``ids`` spell (id 0, padding, left out), wrapped in a 15 px font, as a grey
    square picture (so a page thumbnail shows the first words large, not a letterboxed strip)."""
    from PIL import Image, ImageDraw

    words = [vocabulary[i] if 0 <= i < len(vocabulary) else f"<{i}>" for i in ids.astype(np.int64) if i != 0]
    lines = textwrap.wrap(" ".join(words), LINE) or ["(empty)"]
    if len(lines) > MAX_ROWS:
        lines = [*lines[: MAX_ROWS - 1], "..."]
    font, pad, line_h = _font(15), PAD, 19
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    width = max(int(probe.textlength(line, font=font)) for line in lines) + 2 * pad
    side = max(width, line_h * len(lines) + 2 * pad, 96)
    img = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(img)
    for k, line in enumerate(lines):
        draw.text((pad, pad + k * line_h), line, fill=0, font=font)
    return np.asarray(img, dtype=np.uint8)


def _fit(draw: Any, text: str, font: Any, width: float) -> str:
    """``text``, shortened with a trailing '.' until it is at most ``width`` pixels wide."""
    if draw.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + ".", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "."


def _font(size: int) -> Any:
    """Pillow's built-in font at ``size`` pixels (its bitmap font where FreeType is missing)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # an older Pillow, or no FreeType
        return ImageFont.load_default()

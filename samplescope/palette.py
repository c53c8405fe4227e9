"""The colours samplescope draws with, defined once in ``server/static/palette.json``.

The page imports that file (js/colors.js); the server's heatmap pictures
(server/encoding.py) and the report (report/draw.py) read it here, so a class, a
missing value and a heatmap look the same in the web app and in the report.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any

import numpy as np

PALETTE_FILE = ("server", "static", "palette.json")


@functools.cache
def palette() -> dict[str, Any]:
    """``categorical`` (one hex colour per class, cycling), ``missing``, ``heatmap`` (sequential stops),
    ``positive`` and ``negative`` (signed heatmaps)."""
    return json.loads(files("samplescope").joinpath(*PALETTE_FILE).read_text(encoding="utf-8"))


def rgb(hex_colour: str) -> np.ndarray:
    """``"#rrggbb"`` as a (3,) float32 array of 0..255."""
    h = hex_colour.lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.float32)


def heatmap_stops() -> np.ndarray:
    """(S, 3) float32 RGB stops of the sequential heatmap scale, 0..255."""
    return np.stack([rgb(c) for c in palette()["heatmap"]])

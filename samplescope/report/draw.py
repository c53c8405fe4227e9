"""Small drawing helpers shared by the figure modules: colours, figures, thumbnails.

Class colours and pictures look as they do in the web page: the colours come from the
page's own ``palette.json`` (class k gets entry k, cycling past the end), and a grey
picture is drawn as stored, 0 black and 255 white, whatever its content.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from samplescope.palette import PALETTE_FILE, heatmap_stops, palette  # noqa: F401 - re-exported

#: colour of "everything else" on maps (the page's colour of no value), of markers for confused samples
GREY = palette()["missing"]
MARK = "#111111"
ERROR = "#d62728"
#: how a grey (H, W) picture is drawn: as the page shows the PNG, 0 black and 255 white
GREY_IMAGE = {"cmap": "gray", "vmin": 0, "vmax": 255}


def heatmap_cmap() -> Any:
    """The page's heatmap scale (palette.json ``heatmap``) as a matplotlib colormap."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("samplescope-heatmap", heatmap_stops() / 255.0)


def new_figure(width: float, height: float, **kwargs: Any) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot, no window, thread-safe)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=kwargs.pop("layout", "constrained"), **kwargs)


def class_colors(n: int) -> np.ndarray:
    """(n, 4) RGBA colours, one per class, the page's: class k is ``categorical[k % 20]``."""
    from matplotlib.colors import to_rgba_array

    hexes = palette()["categorical"]
    return to_rgba_array([hexes[k % len(hexes)] for k in range(n)]).reshape(n, 4)


def show_image(ax: Any, image: np.ndarray, title: str | None = None, color: str = "black") -> None:
    """Draw a (H, W) grey or (H, W, 3) colour uint8 picture without axes, as the page does."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        ax.imshow(image, interpolation="nearest", **GREY_IMAGE)
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8, color=color, pad=2)


def dot_sizes(loss: np.ndarray, smallest: float, largest: float) -> np.ndarray:
    """Marker areas growing with the loss, scaled by its 99th percentile (robust to extremes)."""
    loss = np.nan_to_num(np.asarray(loss, dtype=np.float64), nan=0.0)
    top = float(np.quantile(loss, 0.99)) if len(loss) else 0.0
    scaled = np.clip(loss / top, 0.0, 1.0) if top > 0 else np.zeros_like(loss)
    return smallest + (largest - smallest) * scaled

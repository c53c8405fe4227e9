"""Small drawing helpers shared by the figure modules: colours, figures, thumbnails."""

from __future__ import annotations

from typing import Any

import numpy as np

#: colour of "everything else" on maps, and of markers for confused samples
GREY = "#c8c8c8"
MARK = "#111111"
ERROR = "#d62728"


def new_figure(width: float, height: float, **kwargs: Any) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot, no window, thread-safe)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=kwargs.pop("layout", "constrained"), **kwargs)


def class_colors(n: int) -> np.ndarray:
    """(n, 4) RGBA colours, one per class: tab10 up to 10 classes, tab20, then a hue wheel."""
    from matplotlib import colormaps

    if n <= 10:
        return colormaps["tab10"](np.arange(n))
    if n <= 20:
        return colormaps["tab20"](np.arange(n))
    return colormaps["hsv"](np.linspace(0, 1, n, endpoint=False))


def show_image(ax: Any, image: np.ndarray, title: str | None = None, color: str = "black") -> None:
    """Draw a (H, W) grey or (H, W, 3) colour uint8 picture without axes."""
    if image.ndim == 2:
        ax.imshow(image, cmap="gray_r" if _mostly_dark(image) else "gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8, color=color, pad=2)


def _mostly_dark(image: np.ndarray) -> bool:
    """Dark background (MNIST-style ink on black): draw ink dark on white for print."""
    return float(np.median(image)) < 128


def dot_sizes(loss: np.ndarray, smallest: float, largest: float) -> np.ndarray:
    """Marker areas growing with the loss, scaled by its 99th percentile (robust to extremes)."""
    loss = np.nan_to_num(np.asarray(loss, dtype=np.float64), nan=0.0)
    top = float(np.quantile(loss, 0.99)) if len(loss) else 0.0
    scaled = np.clip(loss / top, 0.0, 1.0) if top > 0 else np.zeros_like(loss)
    return smallest + (largest - smallest) * scaled

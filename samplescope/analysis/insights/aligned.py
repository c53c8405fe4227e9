"""A shift- and scale-tolerant image space, for near-duplicates that moved a little.

A copy shifted by a pixel or two, or rescaled by a few percent, is far from its
original in pixel space (a 1-pixel shift of an MNIST digit moves it ~5.4 in L2,
more than the median distance between two different drawings of a digit, 4.2)
and, for a CNN trained with shift augmentation only up to a point, in latent space
too (on the fast-recipe MNIST model a 1-pixel shift moves a latent vector farther
than its 16th nearest other sample). ``canonical(images)`` undoes both: each image is
resampled (bilinearly) so that its centre of mass sits at the image centre and its
radius of gyration (the root-mean-square distance of its ink from that centre) is a
fixed share of the image size. Two copies that differ by a shift and a mild
rescale then differ only by interpolation and re-encoding noise.

Ink is the pixel value above the image's own minimum (channels averaged), so the
moments ignore a uniform background; colour images are resampled channel by
channel with the same warp.
"""

from __future__ import annotations

import numpy as np

__all__ = ["canonical", "is_image_shape"]

TARGET_RADIUS = 0.2  # radius of gyration after resampling, as a share of the image side


def is_image_shape(shape: tuple[int, ...] | None) -> bool:
    """(C, H, W) with a few channels and a picture's size, or (H, W)."""
    if shape is None:
        return False
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        return min(shape) >= 8
    return len(shape) == 3 and shape[0] in (1, 3, 4) and min(shape[1:]) >= 8


def canonical(images: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(B, P) flattened images of ``shape`` -> (B, P) float32, centred and scale-normalised."""
    shape = tuple(int(s) for s in shape)
    c, h, w = (1, *shape) if len(shape) == 2 else shape
    x = np.asarray(images, np.float32).reshape(-1, c, h, w)
    b = len(x)
    ink = x.mean(axis=1)
    ink = ink - ink.reshape(b, -1).min(axis=1)[:, None, None]  # (B, H, W) >= 0
    mass = ink.reshape(b, -1).sum(axis=1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    safe = np.maximum(mass, 1e-12)
    cy = (ink * yy).reshape(b, -1).sum(1) / safe
    cx = (ink * xx).reshape(b, -1).sum(1) / safe
    r2 = (ink * ((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2)).reshape(b, -1).sum(1)
    radius = np.sqrt(r2 / safe)
    blank = (mass <= 1e-12) | (radius <= 1e-6)
    cy = np.where(blank, (h - 1) / 2, cy)
    cx = np.where(blank, (w - 1) / 2, cx)
    # output pixel (u, v) samples the input at centre + (u - middle) * scale
    scale = np.where(blank, 1.0, radius / (TARGET_RADIUS * min(h, w)))
    sy = cy[:, None, None] + (yy - (h - 1) / 2)[None] * scale[:, None, None]  # (B, H, W)
    sx = cx[:, None, None] + (xx - (w - 1) / 2)[None] * scale[:, None, None]
    return _bilinear(x, sy, sx).reshape(b, -1)


def _bilinear(x: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """x (B, C, H, W) sampled at (sy, sx) (B, H, W); zero outside the image.

    One scipy ``map_coordinates`` call over the batch as a volume, the image index an
    integer coordinate (so linear interpolation is bilinear within each image): ~4x
    faster than the same four-corner gather in numpy."""
    from scipy.ndimage import map_coordinates

    b, c, h, w = x.shape
    volume = x.reshape(b * c, h, w)
    index = np.broadcast_to(np.arange(b * c, dtype=np.float32)[:, None, None], (b * c, h, w))
    sy = np.repeat(sy.astype(np.float32), c, axis=0)
    sx = np.repeat(sx.astype(np.float32), c, axis=0)
    out = map_coordinates(volume, [index, sy, sx], order=1, mode="grid-constant", cval=0.0)
    return out.reshape(b, c, h, w)

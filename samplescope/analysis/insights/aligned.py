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

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from samplescope.analysis.sketch import PixelFeatures, PixelSketch

__all__ = ["ALIGNED_COMPONENTS", "ALIGNED_SIGMA", "AlignedFeatures", "AlignedSketch", "aligned_images",
           "canonical", "is_image_shape"]

TARGET_RADIUS = 0.2  # radius of gyration after resampling, as a share of the image side
ALIGNED_SIGMA = 1.0  # the blur (pixels) after alignment: the duplicate finder's aligned_sigma
ALIGNED_COMPONENTS = 64  # principal axes of the aligned sketch: the finder's 2 * n_components


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


def aligned_images(images: np.ndarray, shape: tuple[int, ...], sigma: float = ALIGNED_SIGMA) -> np.ndarray:
    """(B, P) flattened images of ``shape`` -> aligned (:func:`canonical`), then blurred with a
    Gaussian of ``sigma`` pixels (0: none), (B, P) float32."""
    from scipy.ndimage import gaussian_filter

    shape = tuple(int(v) for v in shape)
    a = canonical(np.asarray(images).reshape(len(images), -1), shape)
    if sigma > 0:
        full = a.reshape(len(a), *((1, *shape) if len(shape) == 2 else shape))
        a = gaussian_filter(full, (0, 0, sigma, sigma), mode="constant").reshape(len(a), -1)
    return np.ascontiguousarray(a, dtype=np.float32)


@dataclass
class AlignedFeatures(PixelFeatures):
    """A :class:`~samplescope.analysis.sketch.PixelFeatures` sketch of the aligned images, and what
    it was made with (the duplicate finder uses it only when those match its own parameters)."""

    sigma: float = ALIGNED_SIGMA
    n_components: int = ALIGNED_COMPONENTS
    random_state: int = 0
    fit_size: int = 0  # inputs the principal axes were fitted on


class AlignedSketch:
    """The pixel sketch of aligned, blurred images: fit on a sample of inputs, transform batches."""

    def __init__(self, shape: tuple[int, ...], sigma: float = ALIGNED_SIGMA,
                 n_components: int = ALIGNED_COMPONENTS, random_state: int = 0) -> None:
        self.shape = tuple(int(v) for v in shape)
        self.sigma = sigma
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, sample: np.ndarray) -> AlignedSketch:
        """Principal axes and scale of the aligned ``sample`` (S, ...) inputs."""
        x = np.asarray(sample, np.float32).reshape(len(sample), -1)
        self.sketch_ = PixelSketch(self.n_components, random_state=self.random_state)
        self.sketch_.fit(aligned_images(x, self.shape, self.sigma))
        self.fit_size_ = len(x)
        return self

    def allocate(self, n: int, folder: str | Path | None = None) -> AlignedFeatures:
        f = self.sketch_.allocate(n, folder, name="aligned-sketch")
        return AlignedFeatures(f.z, f.residual, f.digest, f.scale, sigma=self.sigma,
                               n_components=self.n_components, random_state=self.random_state,
                               fit_size=self.fit_size_)

    def transform_into(self, out: PixelFeatures, start: int, batch: np.ndarray) -> None:
        """Align, blur and sketch ``batch`` (B, ...) into rows ``start .. start + B`` of ``out``."""
        x = np.asarray(batch, np.float32).reshape(len(batch), -1)
        self.sketch_.transform_into(out, start, aligned_images(x, self.shape, self.sigma))

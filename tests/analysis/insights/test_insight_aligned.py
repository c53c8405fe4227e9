"""The shift- and scale-tolerant image space: copies that moved map onto their original."""

from __future__ import annotations

import numpy as np

from samplescope.analysis.insights.aligned import _bilinear, canonical, is_image_shape


def _blob(rng, h=28, w=28):
    img = np.zeros((h, w), np.float32)
    y, x = rng.integers(8, 16, 2)
    img[y : y + 6, x : x + 3] = 1.0
    img[y + 4 : y + 7, x : x + 7] = 0.6
    return img


def test_integer_shifts_are_undone_exactly():
    rng = np.random.default_rng(0)
    base = np.stack([_blob(rng) for _ in range(5)])
    moved = np.stack([np.roll(np.roll(b, dy, 0), dx, 1) for b, (dy, dx) in
                      zip(base, [(1, 0), (0, 2), (-2, 1), (2, -2), (-1, -1)], strict=True)])
    a = canonical(base.reshape(5, -1), (1, 28, 28))
    b = canonical(moved.reshape(5, -1), (1, 28, 28))
    np.testing.assert_allclose(a, b, atol=1e-4)
    # the result is centred: its centre of mass is the image centre
    img = a.reshape(5, 28, 28)
    yy, _ = np.mgrid[0:28, 0:28]
    cy = (img * yy).sum((1, 2)) / img.sum((1, 2))
    np.testing.assert_allclose(cy, 13.5, atol=0.3)


def test_bilinear_equals_a_plain_loop():
    rng = np.random.default_rng(1)
    x = rng.random((3, 2, 6, 7)).astype(np.float32)
    sy = rng.uniform(-1, 7, (3, 6, 7)).astype(np.float32)
    sx = rng.uniform(-1, 8, (3, 6, 7)).astype(np.float32)
    got = _bilinear(x, sy, sx)

    def at(b, c, i, j):
        return x[b, c, i, j] if 0 <= i < 6 and 0 <= j < 7 else 0.0

    want = np.zeros_like(got)
    for b in range(3):
        for c in range(2):
            for u in range(6):
                for v in range(7):
                    y, z = sy[b, u, v], sx[b, u, v]
                    i, j = int(np.floor(y)), int(np.floor(z))
                    fy, fz = y - i, z - j
                    want[b, c, u, v] = ((1 - fy) * (1 - fz) * at(b, c, i, j) + (1 - fy) * fz * at(b, c, i, j + 1)
                                        + fy * (1 - fz) * at(b, c, i + 1, j) + fy * fz * at(b, c, i + 1, j + 1))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_image_shapes():
    assert is_image_shape((1, 28, 28)) and is_image_shape((3, 32, 32)) and is_image_shape((28, 28))
    assert not is_image_shape((30,)) and not is_image_shape(None) and not is_image_shape((64, 5, 5))

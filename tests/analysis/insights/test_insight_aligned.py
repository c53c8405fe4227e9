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


def test_the_pass_made_aligned_sketch_gives_the_same_duplicates_and_fetches_only_candidates():
    """The aligned sketch made batch by batch in the per-sample pass (as ``analyze`` does, fitted on
    the seeded sample ``fit_sketches`` draws) gives the finder the very pairs it finds when it aligns
    every input itself; and with it the finder fetches only the candidate pairs' inputs."""
    import pandas as pd

    from samplescope.analysis.insights import Duplicates, InsightContext
    from samplescope.analysis.insights.aligned import AlignedSketch
    from samplescope.pipeline.encode import sample_inputs

    from .test_insight_duplicates import _copies, _digit_images

    images, labels, n_train = _digit_images(n_train=600, n_val=300)
    rng = np.random.default_rng(0)
    src, dst = rng.choice(n_train, 30, replace=False), n_train + rng.choice(300, 30, replace=False)
    images[dst[:15]] = _copies(images[src[:15]], "shifted", rng)
    images[dst[15:]] = _copies(images[src[15:]], "rescaled", rng)
    labels[dst] = labels[src]
    n = len(images)
    flat = images.reshape(n, -1)
    samples = pd.DataFrame({
        "sample_id": np.arange(n), "subset": np.where(np.arange(n) < n_train, "train", "validation"),
        "label": labels, "prediction": labels, "loss": np.full(n, 0.01), "correct": True,
    })
    latent = flat @ rng.normal(size=(flat.shape[1], 16)).astype(np.float32)
    fetched: list[int] = []

    def inputs(rows):
        fetched.extend(np.asarray(rows).tolist())
        return flat[np.asarray(rows)]

    sizes = {"train": n_train, "validation": n - n_train}

    class Two:  # a two-subset integration over these images, as sample_inputs reads one
        def encode_inputs(self, subset, idx):
            return images[(0 if subset == "train" else n_train) + np.asarray(idx)][:, None]

    seed, fit = 3, 500  # the finder's random_state and pca_samples
    sketch = AlignedSketch((1, 28, 28), random_state=seed).fit(sample_inputs(Two(), sizes, fit, seed))
    made = sketch.allocate(n)
    for start in range(0, n, 128):  # the pass's batches, smaller than the finder's chunks
        sketch.transform_into(made, start, images[start : start + 128][:, None])

    from samplescope.analysis.sketch import PixelSketch

    raw = PixelSketch(random_state=seed).fit(flat[:fit]).transform(flat)  # the pass's raw sketch, too

    def found(aligned):
        fetched.clear()
        ctx = InsightContext(samples=samples, latent=latent, inputs=inputs, input_shape=(1, 28, 28),
                             pixel_features=raw, aligned_features=aligned)
        finder = Duplicates(random_state=seed, pca_samples=fit)
        finder.find(ctx)
        return finder.pairs_, set(fetched)

    ref, ref_rows = found(None)
    got, got_rows = found(made)
    pd.testing.assert_frame_equal(got, ref)
    assert (ref["space"] == "aligned").sum() >= 15  # shifted copies are found only once aligned
    assert len(ref_rows) == n  # on its own the finder aligned every input
    assert len(got_rows) < n / 4  # with the pass's sketches: only the candidate pairs' inputs
    # a sketch made with other parameters is not used: the finder aligns the inputs itself
    other = AlignedSketch((1, 28, 28), sigma=2.0, random_state=seed).fit(flat[:fit])
    odd = other.allocate(n)
    other.transform_into(odd, 0, flat)
    again, rows = found(odd)
    pd.testing.assert_frame_equal(again, ref)
    assert len(rows) == n

"""PixelSketch: the bound the duplicate finder relies on, and memory-mapped features equal in-memory ones."""

from __future__ import annotations

import numpy as np

from samplescope.analysis.sketch import PixelSketch


def test_sketch_bounds_distances_and_maps_to_a_file(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 60)).astype(np.float32)
    x[10] = x[3]  # identical inputs share a digest
    sketch = PixelSketch(n_components=8, random_state=0).fit(x[:200])
    mapped = sketch.allocate(len(x), tmp_path)
    for start in range(0, len(x), 128):  # batches, as the inference pass feeds it
        sketch.transform_into(mapped, start, x[start : start + 128])
    assert isinstance(mapped.z, np.memmap) and (tmp_path / "sketch.npy").exists()
    whole = sketch.transform(x)
    np.testing.assert_allclose(mapped.z, whole.z, rtol=1e-5, atol=1e-5)  # BLAS rounds by batch size
    np.testing.assert_allclose(mapped.residual, whole.residual, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(mapped.digest, whole.digest)
    assert mapped.digest[10] == mapped.digest[3] and len(np.unique(mapped.digest)) == len(x) - 1
    # ||x - y||^2 >= ||z_x - z_y||^2 + (r_x - r_y)^2 for every pair (here: 2,000 random ones)
    a, b = rng.integers(0, len(x), (2, 2000))
    true = ((x[a] - x[b]).astype(np.float64) ** 2).sum(1)
    bound = ((whole.z[a] - whole.z[b]).astype(np.float64) ** 2).sum(1) + (whole.residual[a] - whole.residual[b]) ** 2
    assert (bound <= true * (1 + 1e-5) + 1e-6).all()

"""The map payload format and the heatmap overlay, checked against plain numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from samplescope.server.encoding import decode_map, encode_column, heatmap_rgba, pack_columns


def test_payload_round_trip_with_missing_values():
    n = 7
    cols = {
        "x": encode_column(pd.Series(np.linspace(0, 1, n)), "numeric"),
        "score": encode_column(pd.Series([0.5, np.nan, 2, 3, 4, 5, 6]), "numeric"),
        "label": encode_column(pd.Series([0, 1, 2, None, 1, 0, 2]), "categorical", ["a", "b", "c"]),
        "group": encode_column(pd.Series(["u", "v", None, "u", "w", "v", "u"]), "categorical"),
        "flag": encode_column(pd.Series([True, False, None, True, True, False, True]), "bool"),
    }
    header, arrays = decode_map(pack_columns(cols, n, {"classes": ["a", "b", "c"]}))
    assert header["n"] == n and header["classes"] == ["a", "b", "c"]
    for c in header["columns"].values():
        assert c["offset"] % 4 == 0
    np.testing.assert_allclose(arrays["x"], np.linspace(0, 1, n), rtol=1e-6)
    assert np.isnan(arrays["score"][1]) and header["columns"]["score"]["max"] == 6
    assert arrays["label"].tolist() == [0, 1, 2, 255, 1, 0, 2]
    assert header["columns"]["group"]["categories"] == ["u", "v", "w"]
    assert arrays["group"].tolist() == [0, 1, 255, 0, 2, 1, 0]
    assert arrays["flag"].tolist() == [1, 0, 255, 1, 1, 0, 1]


def test_many_categories_use_wider_codes():
    values = pd.Series([f"k{i}" for i in range(300)])
    arr, entry = encode_column(values, "categorical")
    assert entry["dtype"] == "uint16" and arr.max() == 299


def test_heatmap_overlay():
    one_signed = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32)
    rgba = heatmap_rgba(one_signed)
    assert rgba.shape == (2, 2, 4) and rgba.dtype == np.uint8
    assert rgba[0, 0, 3] == 0 and rgba[1, 1, 3] > 200  # weakest clear, strongest opaque
    signed = np.array([[-1.0, 0.0], [0.5, 1.0]], np.float32)
    rgba = heatmap_rgba(signed)
    assert rgba[0, 0, 2] > rgba[0, 0, 0]  # negative: blue
    assert rgba[1, 1, 0] > rgba[1, 1, 2]  # positive: red
    assert rgba[0, 1, 3] == 0
    assert heatmap_rgba(one_signed, shape=(8, 8)).shape == (8, 8, 4)

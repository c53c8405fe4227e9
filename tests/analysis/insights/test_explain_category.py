"""explain._category reads a column's codes made once per context: the same answer as the
per-slice computation over the column's text (the reference below, written out with numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from samplescope.analysis.insights import explain

from . import make_data


def _reference(values, inside, w):
    """The best category by |Cohen's h| among the slice's 20 most common values, by their text."""
    text = np.asarray([str(v) for v in values]) if values.dtype == object else values.astype(str)
    cats, counts = np.unique(text[inside], return_counts=True)
    if len(np.unique(text)) > 50:
        return None
    best = None
    for cat in cats[np.argsort(-counts)][:20]:
        p_in, p_out, h = explain._share(text == cat, inside, w)
        if best is None or abs(h) > abs(best[3]):
            best = (cat, p_in, p_out, h)
    return best, text


@pytest.mark.parametrize("kind", ["object", "int", "bool", "float", "many"])
def test_category_matches_the_text_reference(kind) -> None:
    d = make_data(n_per_class=300, seed=1)
    ctx = d.context()
    n = ctx.n_rows
    rng = np.random.default_rng(2)
    values = {
        "object": rng.choice(np.array(["a", "b", "c", 1, None], dtype=object), n),
        "int": rng.integers(0, 7, n),
        "bool": rng.random(n) < 0.3,
        "float": rng.choice([0.5, 1.0, np.nan], n),
        "many": rng.integers(0, 60, n),  # over 50 values: nothing to summarise
    }[kind]
    w = rng.random(n)
    for trial in range(3):
        inside = rng.random(n) < 0.2 + 0.2 * trial
        got = explain._category(ctx, "col", values, inside, w)
        ref = _reference(values, inside, w)
        if ref is None:
            assert got is None
            continue
        (cat, p_in, p_out, h), text = ref
        assert got["effect"] == pytest.approx(h) and got["inside"] == pytest.approx(p_in)
        assert got["outside"] == pytest.approx(p_out)
        np.testing.assert_array_equal(got["_hit"], text == cat)

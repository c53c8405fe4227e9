"""The samples table written a chunk at a time equals the same rows written as one DataFrame,
whatever types the chunks' columns take (an integer column that gains a missing value, a
column of Nones that then holds text, booleans then integers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from samplescope.errors import RunError
from samplescope.store import RunDatabase


def _chunks() -> list[pd.DataFrame]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(4):
        ids = np.arange(i * 50, (i + 1) * 50)
        out.append(pd.DataFrame({
            "sample_id": ids,
            "subset": "train" if i < 3 else "validation",
            "index": ids,
            "key": [f"k{j}" for j in ids],
            "label": rng.integers(0, 3, 50),
            "count": rng.integers(0, 9, 50) if i < 2 else np.where(rng.random(50) < 0.2, np.nan, 3.5),
            "note": [None] * 50 if i == 0 else [f"n{j}" if j % 3 else None for j in ids],
            "flag": rng.random(50) < 0.5 if i < 3 else rng.integers(0, 5, 50),
        }))  # fmt: skip
    return out


def test_chunks_equal_one_frame(tmp_path):
    chunks = _chunks()
    with RunDatabase(tmp_path / "one.duckdb", writable=True) as db:
        assert db.write_samples(pd.concat(chunks, ignore_index=True)) == 200
        whole, types = db.samples(), db.columns()
    with RunDatabase(tmp_path / "chunks.duckdb", writable=True) as db:
        assert db.write_samples(iter(chunks)) == 200
        got = db.samples()
        assert db.columns() == types  # the same types as pandas' inference over every row
    pd.testing.assert_frame_equal(got, whole)


def test_chunks_out_of_order_are_sorted_and_repeats_refused(tmp_path):
    chunks = [c[["sample_id", "subset", "index", "key", "label"]] for c in _chunks()]
    with RunDatabase(tmp_path / "a.duckdb", writable=True) as db:
        db.write_samples(reversed(chunks))
        assert db.samples()["sample_id"].tolist() == list(range(200))
    with RunDatabase(tmp_path / "b.duckdb", writable=True) as db, pytest.raises(RunError, match="repeats 50 times"):
        db.write_samples([chunks[0], chunks[1], chunks[0]])
    with RunDatabase(tmp_path / "c.duckdb", writable=True) as db, pytest.raises(RunError, match="same metadata columns"):
        db.write_samples([chunks[0], chunks[1].assign(extra=1)])

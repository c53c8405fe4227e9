"""RunDatabase.write_analysis adds the analysis columns beside the integration's, row for row by
sample_id, whether the analysis rows come in the table's order (side by side) or not (joined)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from samplescope.store.database import WRITER_MEMORY_LIMIT, RunDatabase


@pytest.mark.parametrize("order", ["table", "shuffled", "missing"])
def test_analysis_columns_land_on_their_samples(tmp_path, order) -> None:
    rng = np.random.default_rng(0)
    n = 5000
    samples = pd.DataFrame({"sample_id": rng.permutation(n) * 3, "subset": rng.choice(["train", "validation"], n),
                            "label": rng.integers(0, 4, n)})
    analysis = pd.DataFrame({"sample_id": np.sort(samples["sample_id"].to_numpy())})
    analysis["loss"] = rng.random(n).astype(np.float32)
    analysis["cluster"] = rng.integers(0, 9, n)
    if order == "shuffled":
        analysis = analysis.sample(frac=1.0, random_state=1).reset_index(drop=True)
    elif order == "missing":  # a row without analysis: NULL there, as a left join gives
        analysis = analysis.iloc[1:].reset_index(drop=True)
    db = RunDatabase(tmp_path / "s.duckdb", writable=True)
    with db._cursor() as cur:
        limit = cur.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limit.endswith("MiB") and float(limit.split()[0]) * 2**20 <= int(WRITER_MEMORY_LIMIT[:-2]) * 10**6, limit
    db.write_samples(samples)
    db.write_analysis(analysis)
    with db._cursor() as cur:
        got = cur.execute("SELECT * FROM samples").df()
    want = samples.sort_values("sample_id").merge(analysis, on="sample_id", how="left").reset_index(drop=True)
    assert list(got.columns) == list(want.columns)
    np.testing.assert_array_equal(got["sample_id"], want["sample_id"])  # the table stays in sample_id order
    pd.testing.assert_frame_equal(got, want, check_dtype=False)

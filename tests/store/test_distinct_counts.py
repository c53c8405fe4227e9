"""serving.distinct_counts against pandas' nunique(dropna=False): exact below the cap, an estimate
(never mistaken for a small count) for columns with far more values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from samplescope.store import serving
from samplescope.store.database import RunDatabase


def test_distinct_counts_are_exact_below_the_cap_and_estimated_far_above_it(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 60_000
    df = pd.DataFrame({
        "sample_id": np.arange(n),
        "few": rng.integers(0, 7, n),
        "near_cap": rng.integers(0, 390, n),  # under 4 x the cap: counted exactly
        "many": rng.random(n),
        "with_nan": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 5, n)),
    })
    db = RunDatabase(tmp_path / "s.duckdb", writable=True)
    db.write_samples(df)
    names = [c for c in df.columns]
    exact = serving.distinct_counts(db, names)
    capped = serving.distinct_counts(db, names, exact_below=100)
    want = df.nunique(dropna=False)
    for c in names:
        assert exact[c] == want[c], c
    for c in ("few", "near_cap", "with_nan"):
        assert capped[c] == want[c], c
    for c in ("sample_id", "many"):
        assert capped[c] >= 400 and abs(capped[c] - want[c]) <= 0.1 * want[c], c

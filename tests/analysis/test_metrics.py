"""Metrics and aggregates against plain numpy / pandas computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from samplescope.analysis.metrics import (
    aggregate,
    classification_metrics,
    confusion_matrix,
    trend,
)
from samplescope.errors import NotFoundError, SamplescopeError


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    confidence = rng.random(n)
    return pd.DataFrame(
        {
            "confidence": confidence,
            "loss": -np.log(confidence) + rng.random(n) * 0.1,
            "correct": rng.random(n) < confidence,
            "label": rng.integers(0, 3, n),
            "subset": np.where(rng.random(n) < 0.5, "train", "test"),
        }
    )


def test_confusion_matrix_matches_loop() -> None:
    rng = np.random.default_rng(1)
    labels, preds = rng.integers(-1, 4, 200), rng.integers(0, 4, 200)
    expected = np.zeros((4, 4), np.int64)
    for t, p in zip(labels, preds, strict=True):
        if t >= 0:
            expected[t, p] += 1
    cm = confusion_matrix(labels, preds, 4)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)
    with pytest.raises(NotFoundError, match=r"prediction 4 .*\[0, 3\]"):
        confusion_matrix(np.array([0]), np.array([4]), 4)


def test_classification_metrics_match_pandas() -> None:
    rng = np.random.default_rng(2)
    labels, preds = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    labels[:10] = -1
    preds[labels == 3] = 0  # class 3 is never predicted correctly; class 3 never predicted
    preds[preds == 3] = 1
    losses = rng.random(300)
    m = classification_metrics(labels, preds, losses, 4)
    df = pd.DataFrame({"t": labels, "p": preds, "l": losses})[labels >= 0]
    assert m["accuracy"] == pytest.approx((df.t == df.p).mean())
    assert m["mean_loss"] == pytest.approx(df.l.mean())
    assert m["count"] == len(df)
    per = m["per_class"]
    assert list(per.columns) == ["class", "count", "accuracy", "precision", "recall", "mean_loss"]
    for c in range(3):
        rows = df[df.t == c]
        assert per.loc[c, "count"] == len(rows)
        assert per.loc[c, "recall"] == pytest.approx((rows.p == c).mean())
        assert per.loc[c, "accuracy"] == pytest.approx((rows.p == c).mean())
        assert per.loc[c, "precision"] == pytest.approx((df[df.p == c].t == c).mean())
        assert per.loc[c, "mean_loss"] == pytest.approx(rows.l.mean())
    assert np.isnan(per.loc[3, "precision"]) and per.loc[3, "recall"] == 0


def test_aggregate_quantile_bins(table: pd.DataFrame) -> None:
    out = aggregate(table, "confidence", "loss", bins=4)
    assert list(out.columns) == ["bin", "x_lo", "x_hi", "x_mid", "count", "mean", "std"]
    edges = np.quantile(table.confidence, [0, 0.25, 0.5, 0.75, 1])
    cut = pd.cut(table.confidence, edges, right=False, include_lowest=True, labels=False)
    cut = cut.fillna(3).astype(int)  # the maximum belongs to the last bin
    expected = table.groupby(cut)["loss"].agg(["size", "mean", "std"])
    np.testing.assert_array_equal(out["bin"], [0, 1, 2, 3])
    np.testing.assert_allclose(out["x_lo"], edges[:-1])
    np.testing.assert_allclose(out["x_hi"], edges[1:])
    np.testing.assert_allclose(out["x_mid"], (edges[:-1] + edges[1:]) / 2)
    np.testing.assert_array_equal(out["count"], expected["size"])
    np.testing.assert_allclose(out["mean"], expected["mean"])
    np.testing.assert_allclose(out["std"], expected["std"])
    assert out["count"].sum() == len(table)
    assert out.attrs["kind"] == "binned"


def test_aggregate_uniform_keeps_empty_bins_and_by() -> None:
    df = pd.DataFrame(
        {
            "v": [0.0, 0.1, 0.9, 1.0, 0.05],
            "g": ["a", "a", "a", "b", "b"],
            "correct": [True, False, True, True, True],
        }
    )
    out = aggregate(df, "v", "correct", by="g", bins=5, binning="uniform")
    assert list(out.columns) == ["g", "bin", "x_lo", "x_hi", "x_mid", "count", "mean", "std"]
    assert len(out) == 10  # 2 groups x 5 bins, empty bins kept
    a = out[out.g == "a"].set_index("bin")
    assert a.loc[0, "count"] == 2 and a.loc[0, "mean"] == 0.5
    assert a.loc[4, "count"] == 1 and a.loc[2, "count"] == 0 and np.isnan(a.loc[2, "mean"])
    b = out[out.g == "b"].set_index("bin")
    assert b.loc[4, "count"] == 1 and b.loc[0, "count"] == 1


def test_aggregate_categorical_and_count(table: pd.DataFrame) -> None:
    out = aggregate(table, "label", "correct")  # 3 distinct ints <= bins: by value
    assert list(out.columns) == ["x_value", "count", "mean", "std"]
    expected = table.groupby("label")["correct"].agg(["size", "mean"])
    np.testing.assert_array_equal(out["x_value"], expected.index)
    np.testing.assert_allclose(out["mean"], expected["mean"])
    counts = aggregate(table, "correct", "count", by="subset")
    assert list(counts.columns) == ["subset", "x_value", "count"]
    expected = table.groupby(["subset", "correct"]).size()
    np.testing.assert_array_equal(counts["count"], expected.to_numpy())


def test_aggregate_nan_handling() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0], "loss": [1.0, np.nan, 3.0, 5.0]})
    out = aggregate(df, "x", "loss", bins=1)
    assert out.loc[0, "count"] == 3 and out.loc[0, "mean"] == 3.0


def test_aggregate_errors(table: pd.DataFrame) -> None:
    with pytest.raises(NotFoundError, match=r"'nope'.*confidence, loss, correct"):
        aggregate(table, "nope")
    with pytest.raises(NotFoundError, match="y column 'bad'"):
        aggregate(table, "confidence", "bad")
    with pytest.raises(SamplescopeError, match="not numeric"):
        aggregate(table, "confidence", "subset")
    with pytest.raises(SamplescopeError, match="binning"):
        aggregate(table, "confidence", binning="log")  # type: ignore[arg-type]


def test_trend_is_spearman(table: pd.DataFrame) -> None:
    from scipy.stats import spearmanr

    out = aggregate(table, "confidence", "loss", bins=8)
    assert trend(out) == pytest.approx(spearmanr(out["bin"], out["mean"]).statistic)
    assert trend(out) < -0.9  # loss falls as confidence rises
    assert trend(aggregate(table, "confidence", "correct", bins=5)) > 0.5
    assert np.isnan(trend(out.iloc[:1]))
    with pytest.raises(SamplescopeError, match="one group at a time"):
        trend(aggregate(table, "confidence", by="subset"))
    with pytest.raises(SamplescopeError, match="binned aggregate"):
        trend(aggregate(table, "label"))


def test_package_exports_resolve_lazily() -> None:
    """Every name in samplescope.analysis.__all__ resolves; metrics alone never imports torch."""
    import subprocess
    import sys

    from samplescope import analysis

    for name in analysis.__all__:
        assert getattr(analysis, name) is not None
    code = (
        "import sys; from samplescope.analysis import aggregate, trend; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

"""A selection resolved and summarised in DuckDB (store/map_queries.shape_where,
store/serving.selection_summary) equals the same computed in pandas on the whole table,
with matplotlib's even-odd point-in-polygon test as the lasso's reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.path import Path as MplPath

from samplescope.store import RunDatabase, map_queries, serving
from samplescope.store.serving import Condition


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(5)
    n = 6000
    frame = pd.DataFrame({
        "sample_id": np.arange(n),
        "subset": rng.choice(["train", "validation"], n, p=[0.7, 0.3]),
        "label": rng.integers(0, 4, n).astype(np.float64),
        "loss": rng.exponential(1.0, n),
        "correct": rng.random(n) > 0.25,
        "map_x": rng.normal(size=n).astype(np.float32),
        "map_y": rng.normal(size=n).astype(np.float32),
    })  # fmt: skip
    frame.loc[rng.random(n) < 0.05, "label"] = np.nan  # unlabelled rows
    frame.loc[rng.random(n) < 0.05, "loss"] = np.nan
    frame.loc[:30, "loss"] = 5.0  # ties broken by id
    path = tmp_path_factory.mktemp("summary") / "samples.duckdb"
    with RunDatabase(path, writable=True) as db:
        db.write_samples(frame)
    db = RunDatabase(path)
    yield db, db.samples()
    db.close()


def _reference(rows: pd.DataFrame) -> dict:
    labelled = rows[rows["label"].notna()]
    mix = labelled.assign(wrong=~labelled["correct"]).groupby("label")["wrong"].agg(["size", "sum"])
    mix = mix.reset_index().sort_values(["size", "label"], ascending=[False, True])
    top = rows.assign(_l=rows["loss"].fillna(-np.inf)).sort_values(["_l", "sample_id"], ascending=[False, True])
    mean = lambda s: float(s.mean()) if s.notna().any() else None
    return {
        "count": len(rows),
        "accuracy": mean(labelled["correct"].astype(float)),
        "mean_loss": mean(labelled["loss"]),
        "class_mix": [(int(c), int(n), int(e)) for c, n, e in mix[["label", "size", "sum"]].itertuples(index=False)],
        "subsets": rows["subset"].value_counts().to_dict(),
        "examples": top["sample_id"].head(60).tolist(),
    }


def _same(got: dict, want: dict) -> None:
    for key in ("accuracy", "mean_loss"):
        assert (got[key] is None) == (want[key] is None) and got[key] == pytest.approx(want[key]), key
    assert {k: got[k] for k in ("count", "class_mix", "subsets", "examples")} == {
        k: want[k] for k in ("count", "class_mix", "subsets", "examples")
    }


POLYGONS = {
    "star": [[1.6 * r * np.cos(a), 1.6 * r * np.sin(a)] for a, r in
             zip(np.linspace(0, 2 * np.pi, 14, endpoint=False), np.where(np.arange(14) % 2 == 0, 1.0, 0.35))],
    "with horizontal edges": [[-1.0, -1.0], [1.5, -1.0], [1.5, 0.2], [0.0, 0.2], [0.0, 1.0], [-1.0, 1.0]],
    "self-crossing bow tie": [[-1.5, -1.0], [1.5, 1.0], [1.5, -1.0], [-1.5, 1.0]],
}  # fmt: skip


@pytest.mark.parametrize("name", list(POLYGONS))
def test_a_lasso_equals_the_even_odd_rule_over_every_sample(table, name):
    db, frame = table
    polygon = POLYGONS[name]
    clause, params = map_queries.shape_where(db, [], polygon=polygon)
    found = db.fetch_numpy(f'SELECT "sample_id" FROM {{source}} {clause} ORDER BY "sample_id"', params)["sample_id"]
    xy = frame[["map_x", "map_y"]].to_numpy(np.float64)
    inside = frame["sample_id"][MplPath(np.asarray(polygon)).contains_points(xy)].to_numpy()
    assert len(inside) > 100
    np.testing.assert_array_equal(np.asarray(found), inside)
    _same(serving.selection_summary(db, clause, params, class_mix=True), _reference(frame[frame["sample_id"].isin(inside)]))


def test_a_box_with_conditions_and_an_id_list_equal_pandas(table):
    db, frame = table
    clause, params = map_queries.shape_where(db, [Condition("subset", "==", "train")], box=(0.5, -1.0, -0.3, 2.0))
    keep = frame[frame["map_x"].between(-1.0, 0.5) & frame["map_y"].between(-0.3, 2.0) & (frame["subset"] == "train")]
    _same(serving.selection_summary(db, clause, params, class_mix=True), _reference(keep))
    ids = list(range(0, 6000, 7))
    clause, params = serving.where_sql([Condition("sample_id", "in", ids)], db.columns())
    _same(serving.selection_summary(db, clause, params, class_mix=True), _reference(frame.iloc[ids]))
    none = serving.selection_summary(db, *map_queries.shape_where(db, [], box=(50, 60, 50, 60)), class_mix=True)
    assert none == {"count": 0, "accuracy": None, "mean_loss": None, "class_mix": [], "subsets": {}, "examples": []}


def test_the_summary_is_two_small_answers(table, monkeypatch):
    """The selection's rows stay in DuckDB: a grouped answer and the top 60 ids come back."""
    db, _ = table
    sizes = []
    fetch, fetch_numpy = db.fetch, db.fetch_numpy
    monkeypatch.setattr(db, "fetch", lambda *a: sizes.append(len(out := fetch(*a))) or out)
    monkeypatch.setattr(db, "fetch_numpy", lambda *a: sizes.append(len((out := fetch_numpy(*a))["sample_id"])) or out)
    serving.selection_summary(db, *map_queries.shape_where(db, [], box=(-9, 9, -9, 9)), class_mix=True)
    assert len(sizes) == 2 and max(sizes) <= 60

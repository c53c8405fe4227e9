"""The map's grid index (store/map_index.py) against pandas over the same points, and its
seeded pick against its stated properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from samplescope.store.map_index import MapIndex, seeded_pick


@pytest.fixture(scope="module")
def points() -> pd.DataFrame:
    """Clustered float32 positions with NaN, infinite and repeated values, ids 0..N-1."""
    rng = np.random.default_rng(3)
    n = 20_000
    centres = rng.normal(0, 5, size=(8, 2))
    xy = (centres[rng.integers(0, 8, n)] + rng.normal(0, 0.7, size=(n, 2))).astype(np.float32)
    xy[rng.choice(n, 200, replace=False), 0] = np.nan
    xy[rng.choice(n, 50, replace=False), 1] = np.inf
    xy[rng.choice(n, 50, replace=False), 0] = -np.inf
    xy[rng.choice(n, 300, replace=False)] = xy[7]  # many samples at one position
    return pd.DataFrame({"sample_id": np.arange(n), "x": xy[:, 0], "y": xy[:, 1]})


def _inside(frame: pd.DataFrame, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Ids inside, as DuckDB's BETWEEN on a FLOAT column with DOUBLE bounds decides."""
    x, y = frame["x"].to_numpy(np.float64), frame["y"].to_numpy(np.float64)
    keep = (x >= min(x0, x1)) & (x <= max(x0, x1)) & (y >= min(y0, y1)) & (y <= max(y0, y1))
    return frame["sample_id"].to_numpy()[keep]


@pytest.mark.parametrize("grid", [None, 1, 7, 64])
def test_every_box_holds_exactly_the_samples_pandas_finds(points, grid):
    index = MapIndex.build(points["sample_id"], points["x"], points["y"], grid=grid)
    finite = points[np.isfinite(points["x"]) & np.isfinite(points["y"])]
    assert len(index.ids) == len(finite)
    rng = np.random.default_rng(grid or 0)
    xs, ys = finite["x"].to_numpy(np.float64), finite["y"].to_numpy(np.float64)
    for trial in range(60):
        if trial % 3 == 0:  # bounds exactly on samples' positions: edges are included
            a, b = rng.choice(len(finite), 2)
            box = (xs[a], xs[b], ys[a], ys[b])
        else:
            box = (*rng.uniform(-15, 15, 2), *rng.uniform(-15, 15, 2))
        found = np.sort(index.ids[index.box(*box)])
        np.testing.assert_array_equal(found, _inside(points, *box), err_msg=str(box))
    # the whole extent, a box outside it, a box of zero area on the repeated position
    x0, x1, y0, y1 = index.extent
    assert len(index.box(x0, x1, y0, y1)) == len(finite)
    assert len(index.box(x1 + 1, x1 + 2, y0, y1)) == 0
    p = points.loc[7]
    assert len(index.box(p.x, p.x, p.y, p.y)) == len(_inside(points, p.x, p.x, p.y, p.y)) >= 300


def test_positions_are_returned_ascending_and_point_at_their_samples(points):
    index = MapIndex.build(points["sample_id"], points["x"], points["y"])
    pos = index.box(-3, 4, -6, 2)
    assert len(pos) > 100 and np.all(np.diff(pos) > 0)
    by_id = points.set_index("sample_id").loc[index.ids[pos]]
    np.testing.assert_array_equal(index.x[pos], by_id["x"].to_numpy())
    np.testing.assert_array_equal(index.y[pos], by_id["y"].to_numpy())


def test_an_index_of_no_placed_samples_finds_nothing():
    nan = np.full(5, np.nan, np.float32)
    index = MapIndex.build(np.arange(5), nan, nan)
    assert len(index.ids) == 0 and len(index.box(-1e9, 1e9, -1e9, 1e9)) == 0


def test_the_seeded_pick_is_stable_and_nested():
    rng = np.random.default_rng(5)
    ids = np.sort(rng.choice(10**7, 5000, replace=False))
    pick = seeded_pick(ids, 300, seed=4)
    assert len(pick) == 300 and np.all(np.diff(pick) > 0)
    np.testing.assert_array_equal(pick, seeded_pick(ids, 300, seed=4))
    assert not np.array_equal(pick, seeded_pick(ids, 300, seed=5))
    # a sample picked among many is picked among any fewer that still hold it
    fewer = ids[rng.random(len(ids)) < 0.4]
    picked_fewer = set(fewer[seeded_pick(fewer, 300, seed=4)].tolist())
    assert set(ids[pick].tolist()) & set(fewer.tolist()) <= picked_fewer
    np.testing.assert_array_equal(seeded_pick(ids[:200], 300), np.arange(200))


def test_a_runs_index_leaves_out_samples_without_a_position(tmp_path):
    """NULL positions (a sample the map did not place) read through DuckDB are never found."""
    from samplescope.store import RunDatabase

    rng = np.random.default_rng(3)
    n = 400
    x, y = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    unplaced = rng.random(n) < 0.2
    df = pd.DataFrame({"sample_id": range(n), "subset": "train", "index": range(n), "key": [str(i) for i in range(n)]})
    with RunDatabase(tmp_path / "samples.duckdb", writable=True) as db:
        db.write_samples(df)
        db.write_analysis(pd.DataFrame({"sample_id": range(n),
                                        "map_x": pd.array(np.where(unplaced, np.nan, x), dtype="Float32"),
                                        "map_y": pd.array(np.where(unplaced, np.nan, y), dtype="Float32")}))
        assert db.fetch('SELECT count(*) AS c FROM {source} WHERE "map_x" IS NULL')["c"][0] == unplaced.sum()
        index = MapIndex.of_run(db, grid=8)
    assert sorted(index.ids.tolist()) == np.flatnonzero(~unplaced).tolist()
    found = index.box(-np.inf, np.inf, -np.inf, np.inf)
    assert sorted(index.ids[found].tolist()) == np.flatnonzero(~unplaced).tolist()


def test_a_saved_index_reads_back_and_a_damaged_one_is_refused(points, tmp_path):
    ids = np.arange(len(points))
    index = MapIndex.build(ids, points["x"].to_numpy(), points["y"].to_numpy())
    made = index.save(tmp_path / "mi")
    back = MapIndex.saved(tmp_path / "mi", made, len(points))
    assert back is not None and back.grid == index.grid and back.extent == index.extent
    for a, b in ((back.ids, index.ids), (back.x, index.x), (back.y, index.y), (back.offsets, index.offsets)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.box(-0.5, 0.7, -1, 0.2), index.box(-0.5, 0.7, -1, 0.2))
    assert MapIndex.saved(tmp_path / "mi", None, len(points)) is None  # run.json records none
    assert MapIndex.saved(tmp_path / "mi", {**made, "grid": made["grid"] * 2}, len(points)) is None
    assert MapIndex.saved(tmp_path / "mi", made, int(index.ids.max())) is None  # ids beyond this run
    assert MapIndex.saved(tmp_path / "nothing", made, len(points)) is None
    np.save(tmp_path / "mi" / "offsets.npy", index.offsets[::-1].copy())
    assert MapIndex.saved(tmp_path / "mi", made, len(points)) is None  # offsets out of order
    (tmp_path / "mi" / "x.npy").write_bytes(b"not an array")
    assert MapIndex.saved(tmp_path / "mi", made, len(points)) is None

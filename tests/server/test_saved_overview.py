"""A large run's map overview, made by analyze and read by serve (store/map_queries.py)."""

from __future__ import annotations

import json

import numpy as np

from samplescope.server import Settings
from samplescope.server.state import ServerState
from samplescope.store import layout, map_queries


def test_analyze_makes_the_overview_with_the_servers_defaults(tiny_run_path, tmp_path, monkeypatch) -> None:
    import shutil

    from samplescope.pipeline.analyze import analyze_run

    path = tmp_path / "run"
    shutil.copytree(tiny_run_path, path)
    calls = []
    real = map_queries.save_overview
    monkeypatch.setattr(map_queries, "save_overview", lambda *a: calls.append(a[4:]) or real(*a))
    summary = analyze_run(path, projection="pca", progress=False)
    defaults = Settings()
    assert calls == [(defaults.map_full_max, defaults.map_overview_points)]
    assert summary["map_overview"] is None and not (path / layout.MAP_OVERVIEW).exists()  # small: sent whole


def test_serve_reads_the_saved_overview_and_makes_its_own_otherwise(tiny_run, tmp_path, monkeypatch) -> None:
    import shutil

    import samplescope

    path = tmp_path / "run"
    shutil.copytree(tiny_run.path, path)
    run = samplescope.open_run(path)
    n, group = len(run.samples(columns=["subset"])), run.task.map_group_sql
    fresh = map_queries.overview_ids(run.db, 300, group=group)
    made = map_queries.save_overview(run.db, path, n, group, full_max=500, points=300)
    assert made == {"points": 300, "group": group, "n": len(fresh)}
    np.testing.assert_array_equal(np.load(path / layout.MAP_OVERVIEW), fresh)
    assert map_queries.save_overview(run.db, tmp_path, n, group, 10**6, 300) is None  # small enough to send whole
    assert not (tmp_path / layout.MAP_OVERVIEW).exists()

    run.info.setdefault("analysis", {})["map_overview"] = made
    calls = []
    real = map_queries.overview_ids
    monkeypatch.setattr(map_queries, "overview_ids", lambda *a, **k: calls.append(1) or real(*a, **k))
    state = ServerState(run, Settings(prewarm=False, map_full_max=500, map_overview_points=300))
    np.testing.assert_array_equal(state.map_rows, fresh)
    assert calls == []  # read, not made
    other = ServerState(run, Settings(prewarm=False, map_full_max=500, map_overview_points=200))
    assert len(other.map_rows) <= 200 and calls == [1]  # another budget: made here
    np.save(path / layout.MAP_OVERVIEW, fresh[::-1])  # not sorted: damaged
    again = ServerState(run, Settings(prewarm=False, map_full_max=500, map_overview_points=300))
    np.testing.assert_array_equal(again.map_rows, fresh)
    assert calls == [1, 1]
    run.close()


def test_analyze_saves_the_map_index_and_serve_reads_it(tiny_run_path, tmp_path, monkeypatch, check_held_columns) -> None:
    import shutil

    import samplescope
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.store.map_index import MapIndex

    path = tmp_path / "run"
    shutil.copytree(tiny_run_path, path)
    monkeypatch.setattr(map_queries, "FULL_MAX", 500)  # a "large" run: its viewports come from the index
    summary = analyze_run(path, projection="pca", progress=False)
    assert summary["map_index"]["placed"] > 500 and (path / layout.MAP_INDEX).is_dir()
    run = samplescope.open_run(path)
    built = MapIndex.of_run(run.db)
    calls = []
    real = MapIndex.of_run
    monkeypatch.setattr(MapIndex, "of_run", classmethod(lambda cls, *a, **k: calls.append(1) or real(*a, **k)))
    state = ServerState(run, Settings(prewarm=False, map_full_max=500, map_overview_points=300))
    held = state.held_map.index
    assert calls == []  # read, not built
    assert held.grid == built.grid and held.extent == built.extent
    np.testing.assert_array_equal(held.ids, built.ids)
    np.testing.assert_array_equal(held.offsets, built.offsets)
    # the columns every viewport carries, saved coded: equal to what the server codes from the
    # table, and loaded rather than read (the table is not asked)
    saved = summary["map_index"]["columns"]
    assert list(saved) == list(state.map_columns) == ["label", "prediction", "loss", "subset", "correct"]
    frame = run.samples(columns=[*saved, "map_x", "map_y"])
    real_whole, reads = check_held_columns(state, saved)
    # the overview's columns are gathered from the same files, the positions read by id
    rows = state.map_rows
    assert rows is not None and 0 < len(rows) < len(frame)
    for name in saved:
        np.testing.assert_array_equal(state.map_column(name)[0], real_whole(name)[0][rows])
    for axis in ("map_x", "map_y"):
        np.testing.assert_array_equal(state.map_column(axis)[0], frame[axis].to_numpy(np.float32)[rows])
    assert reads == []
    np.testing.assert_array_equal(state.held_map.column("label")[0], frame["label"].to_numpy())
    np.testing.assert_array_equal(state.held_map.column("correct")[0], frame["correct"].to_numpy().astype("u1"))
    subsets = state.held_map.column("subset")[1]["categories"]
    assert [subsets[c] for c in state.held_map.column("subset")[0]] == frame["subset"].tolist()
    run.close()

    # a saved column is data: one that does not fit (a code past the categories, another
    # length, categories not the run's) is read from the table instead
    folder = path / layout.MAP_INDEX
    label = np.load(folder / "column-label.npy")
    np.save(folder / "column-label.npy", np.where(np.arange(len(label)) == 3, 200, label).astype(label.dtype))
    np.save(folder / "column-prediction.npy", np.load(folder / "column-prediction.npy")[:-1])
    info = json.loads((path / layout.RUN_JSON).read_text())
    info["analysis"]["map_index"]["columns"]["subset"]["categories"] = ["validation", "train"]
    (path / layout.RUN_JSON).write_text(json.dumps(info))
    run = samplescope.open_run(path)
    state = ServerState(run, Settings(prewarm=False, map_full_max=500, map_overview_points=300))
    reads.clear()
    real_whole = state.coder.whole
    monkeypatch.setattr(state.coder, "whole", lambda name: reads.append(name) or real_whole(name))
    for name in saved:
        np.testing.assert_array_equal(state.held_map.column(name)[0], real_whole(name)[0])
    assert reads == ["label", "prediction", "subset"]
    run.close()

    monkeypatch.setattr(map_queries, "FULL_MAX", 10**6)  # small again: the stale index goes
    summary = analyze_run(path, projection="pca", progress=False)
    assert summary["map_index"] is None and not (path / layout.MAP_INDEX).exists()


def test_analyze_counts_distinct_values_for_the_server(tiny_run_path, tmp_path, monkeypatch) -> None:
    """run.json carries the distinct counts the server's limits ask for: equal to counting them
    in DuckDB, used instead of counting, and counted again when the record does not fit."""
    import shutil

    import samplescope
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.server import limits
    from samplescope.store import serving

    path = tmp_path / "run"
    shutil.copytree(tiny_run_path, path)
    summary = analyze_run(path, projection="pca", progress=False)
    run = samplescope.open_run(path)
    counted = serving.distinct_counts(run.db, list(run.db.columns()), exact_below=limits.DISTINCT_EXACT_BELOW)
    assert summary["distinct_counts"] == {"exact_below": limits.DISTINCT_EXACT_BELOW, "counts": counted}
    frame = run.samples()
    small = [c for c in frame.columns if counted[c] < limits.DISTINCT_EXACT_BELOW]
    assert small and all(counted[c] == frame[c].nunique(dropna=False) for c in small)  # exact there
    calls = []
    real = serving.distinct_counts
    monkeypatch.setattr(serving, "distinct_counts", lambda *a, **k: calls.append(1) or real(*a, **k))
    state = ServerState(run, Settings(prewarm=False))
    assert state.distinct_counts == counted and calls == []
    for bad in ({"exact_below": 7, "counts": counted}, {**summary["distinct_counts"], "counts": {"label": 10}},
                {**summary["distinct_counts"], "counts": {**counted, "loss": "many"}}):  # fmt: skip
        run.info["analysis"]["distinct_counts"] = bad
        assert ServerState(run, Settings(prewarm=False)).distinct_counts == counted
    assert len(calls) == 3
    run.close()

"""The viewport columns analyze saves for a large run, for the other tasks: a regression
target is numeric (its range saved), a multi-label run's label sets are text coded by their
distinct values. Each saved column equals what the server codes from the table."""

from __future__ import annotations

import shutil

import pytest


@pytest.mark.parametrize("name", ["diabetes_run", "pairs_run"])
def test_saved_columns_equal_the_servers_coding(name, request, tmp_path, monkeypatch, check_held_columns):
    import samplescope
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.server import Settings
    from samplescope.server.state import ServerState
    from samplescope.store import map_queries

    path = tmp_path / "run"
    shutil.copytree(request.getfixturevalue(name), path)
    monkeypatch.setattr(map_queries, "FULL_MAX", 100)  # "large": analyze saves the index and columns
    summary = analyze_run(path, projection="pca", progress=False, device="cpu")
    saved = summary["map_index"]["columns"]
    run = samplescope.open_run(path)
    state = ServerState(run, Settings(prewarm=False, map_full_max=100, map_overview_points=50))
    try:
        assert list(saved) == list(state.map_columns) and "label" in saved
        check_held_columns(state, saved)  # every one loaded from analyze's files
        kinds = {c: saved[c]["kind"] for c in saved}
        assert kinds["loss"] == "numeric" and kinds["subset"] == "categorical"
        assert kinds["label"] == ("numeric" if name == "diabetes_run" else "categorical")
    finally:
        run.close()

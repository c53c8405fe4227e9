"""GET /api/samples/<id> reads one row without a DataFrame (state.sample_record): it must send
exactly what the frame path (pandas' to_json, server/records.records) sends."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from samplescope.server.records import json_double, record, records


@pytest.fixture(scope="module")
def state(app):
    return app.state.samplescope.current()


def test_json_double_is_pandas_to_json(tmp_path):
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.standard_normal(5000),
        10 ** rng.uniform(-20, 20, 5000) * rng.choice([-1, 1], 5000),
        rng.integers(0, 10**7, 2000) / 1e6 + 5e-7,  # halfway at the 6th decimal, as near as a double gets
        [0.0, -0.0, 5e-7, 1.5e-6, 2.5e-6, 0.9999995, 1e16 - 1, 1e16, 1e-15, 9.99e-16, 5e-324, 1.7e308],
        [math.nan, math.inf, -math.inf],
    ])  # fmt: skip
    for column in (values, values[np.abs(values) < 1e30].astype(np.float32)):
        want = [r["v"] for r in json.loads(pd.DataFrame({"v": column}).to_json(orient="records", double_precision=6))]
        got = [json_double(float(v)) for v in column]
        assert got == want
        assert [math.copysign(1, v) for v in got if v is not None] == [math.copysign(1, v) for v in want if v is not None]


def test_rows_across_the_run_read_as_the_frame_path(state):
    assert state._plain_columns  # the tiny run's columns are all of plain types
    ids = np.unique([*range(0, state.n, 3), state.n - 1])
    table = records(state.rows(ids), state.classes, state.class_columns)  # one frame of every row
    assert [state.sample_record(int(i)) for i in ids] == table


def test_edge_rows_read_as_the_frame_path_of_that_row(state):
    """Per row, the frame exactly as the old route built it (its dtypes follow the one row)."""
    frame = state.run.samples()  # (NULLs, NaN and the other awkward values: tests/store/test_rows.py)
    firsts = frame.groupby("subset")["sample_id"].agg(["min", "max"]).to_numpy().ravel().tolist()
    wrong = frame.index[~frame["correct"]].tolist()
    ids = sorted({0, state.n - 1, *firsts, *wrong[:20], *range(1, state.n, 97)})
    assert len(wrong)
    for i in ids:
        old = state.records(state.rows([i]))[0]
        new = state.sample_record(i)
        assert new == old and list(new) == list(old), i


def test_route_answers_the_same_bytes_on_both_paths(client, state, monkeypatch):
    ids = [0, 1, 2, 17, 500, state.n - 1]
    fast = [client.get(f"/api/samples/{i}").content for i in ids]
    monkeypatch.setattr(state, "_plain_columns", False)
    slow = [client.get(f"/api/samples/{i}").content for i in ids]
    assert fast == slow
    assert json.loads(fast[0])["row"]["sample_id"] == 0


def test_a_class_index_outside_the_classes_has_no_name():
    row = {"sample_id": 3, "label": 12, "prediction": -1, "nearest_centroid": None, "x": 0.1234567}
    got = record(row, ["a", "b"], ("label", "prediction", "nearest_centroid"))
    assert got == {**row, "x": 0.123457, "label_name": None, "prediction_name": None, "nearest_centroid_name": None}


@pytest.mark.parametrize("ids", [[10], [0], [1796], [3, 40, 41]])
def test_similars_read_with_their_neighbours_are_those_rows(state, ids):
    """state.similar reads the table rows in the neighbour query (one query, not two): the same
    rows as reading the found ids again, in the neighbours' order, similarity beside."""
    got = state.similar(ids, k=7)
    bare = state.run.similar(ids[0], k=7) if len(ids) == 1 else state.run.similar_to_set(ids, k=7)
    want = state.rows(bare["sample_id"].to_numpy(), state.row_columns)
    want["similarity"] = bare["similarity"].to_numpy(dtype=float)
    assert list(got.columns) == [*state.row_columns, "similarity"]
    assert state.records(got) == state.records(want)
    assert got["sample_id"].tolist() == bare["sample_id"].tolist()

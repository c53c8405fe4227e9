"""RunDatabase.rows / .row: the rows of given sample ids, against the whole table in pandas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from samplescope.errors import NotFoundError
from samplescope.server.records import record, records
from samplescope.store import RunDatabase


@pytest.fixture(scope="module")
def odd_db(tmp_path_factory):
    """A samples table of the awkward values: NULLs in int, bool and text columns, NaN, +-inf,
    -0.0, floats at the edges of pandas' fixed notation, float32, class indices out of range."""
    floats = [
        0.0, -0.0, 0.5, 1.5e-7, -4e-7, 5e-7, 0.1234565, 0.9999995, 123456.1234565, 1e16 - 1, 1e16,
        1e17, 1e-15, 9e-16, -3.3e-20, 1e300, math.nan, math.inf, -math.inf, 2.5, 7.0,
    ]
    n = len(floats)
    df = pd.DataFrame({
        "sample_id": np.arange(n, dtype=np.int64),
        "subset": ["train" if i % 3 else "validation" for i in range(n)],
        "label": pd.array([None if i % 4 == 0 else i % 12 - 1 for i in range(n)], dtype="Int64"),
        "prediction": np.arange(n, dtype=np.int64) % 11,
        "flag": pd.array([None if i % 5 == 0 else bool(i % 2) for i in range(n)], dtype="boolean"),
        "note": [None if i % 6 == 0 else f"n{i} \"q\" / é" for i in range(n)],
        "value": floats,
        "small": np.asarray([v if abs(v) < 1e30 else math.inf for v in floats], dtype=np.float32),
        "big": np.arange(n, dtype=np.int64) * 10**15,
    })  # fmt: skip
    path = tmp_path_factory.mktemp("rows") / "samples.duckdb"
    with RunDatabase(path, writable=True) as db:
        db.write_samples(df)
    db = RunDatabase(path)
    yield db
    db.close()


def whole(db: RunDatabase) -> pd.DataFrame:
    return db.samples().set_index("sample_id", drop=False)


def values(frame: pd.DataFrame) -> list[list]:
    """The frame's cells, every kind of missing value as None (a column's dtype follows the rows
    a query returns: an all-NULL text column is object, not str)."""
    return [[None if pd.isna(v) else v for v in row] for row in frame.itertuples(index=False)]


@pytest.mark.parametrize("ids", [[0], [5, 2, 9], [3, 3, 1], list(range(21))[::-1], []])
def test_rows_come_in_the_order_asked(odd_db, ids):
    got = odd_db.rows(ids, ["label", "value", "note"])
    want = whole(odd_db).loc[ids, ["sample_id", "label", "value", "note"]].reset_index(drop=True)
    assert values(got) == values(want)
    assert list(got.columns) == ["sample_id", "label", "value", "note"]


def test_rows_of_every_column_and_nulls_stay_missing(odd_db):
    got = odd_db.rows([4, 0, 8])
    assert list(got.columns) == list(odd_db.columns())
    assert got["label"].isna().tolist() == [True, True, True]  # (NULL, not 0, as fetchnumpy gave)


def test_unknown_ids_and_columns_are_named(odd_db):
    with pytest.raises(NotFoundError, match=r"\[99, 100\].*2 of the 3"):
        odd_db.rows([1, 99, 100])
    with pytest.raises(NotFoundError, match="'nope'"):
        odd_db.rows([1], ["nope"])
    assert odd_db.row(99) is None


def test_row_is_the_rows_answer_as_plain_values(odd_db):
    table = whole(odd_db)
    for i in range(len(table)):
        one = odd_db.row(i)
        assert list(one) == list(table.columns)
        for name, value in one.items():
            ref = table.at[i, name]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                assert pd.isna(ref), (i, name)
            else:
                assert value == ref and type(value) in (int, float, bool, str), (i, name, value, ref)
    assert odd_db.row(3, ["label"]) == {"sample_id": 3, "label": 2}


def test_record_of_a_row_is_the_frames_record(odd_db):
    """The API's single-row path (server/records.record) against pandas' to_json path."""
    classes = [f"c{k}" for k in range(10)]
    class_columns = ("label", "prediction")
    for i in range(len(whole(odd_db))):
        fast = record(odd_db.row(i), classes, class_columns)
        slow = records(odd_db.rows([i]), classes, class_columns)[0]
        assert fast == slow, i
        assert list(fast) == list(slow)
        for name, value in slow.items():  # -0.0 stays -0.0, 7.0 stays a float
            if isinstance(value, float):
                assert isinstance(fast[name], float) and math.copysign(1, fast[name]) == math.copysign(1, value)
    assert record(odd_db.row(12), classes, class_columns)["label_name"] is None  # label 11: no such class

"""The in-memory blocks of the samples table (samplescope/server/rowcache.py) give what the
database gives: every row equal to ``RunDatabase.row``'s (one query per row, ``fetchone``)."""

from __future__ import annotations

import math

import duckdb
import pytest

from samplescope.server import Settings, create_app, rowcache
from samplescope.server.rowcache import RowCache

from .conftest import LOCAL
from .conftest import test_client_class as client_class


def _same(a: dict, b: dict) -> bool:
    """Equal dicts, NaN equal to NaN and -0.0 told from 0.0, types included (1 is not 1.0 or True)."""
    if list(a) != list(b):
        return False
    for k, x in a.items():
        y = b[k]
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if not (math.isnan(x) and math.isnan(y)) and (x != y or math.copysign(1, x) != math.copysign(1, y)):
                return False
        elif x != y:
            return False
    return True


@pytest.fixture
def table():
    """A table of every plain type with NULLs, NaN, infinities, -0.0, extremes, and holes in the
    ids, across several blocks of 16 ids (out of order on disk)."""
    conn = duckdb.connect()
    conn.execute(
        """CREATE TABLE samples AS SELECT * FROM (
           SELECT i AS sample_id,
             CASE WHEN i % 7 = 3 THEN NULL ELSE i * 3 - 40 END::BIGINT AS big,
             CASE WHEN i % 5 = 1 THEN NULL WHEN i % 11 = 0 THEN 'nan'::DOUBLE
                  WHEN i % 13 = 2 THEN '-inf'::DOUBLE WHEN i % 17 = 4 THEN -0.0 ELSE i / 3.0 END AS d,
             CASE WHEN i % 6 = 0 THEN NULL ELSE (i * 0.1)::FLOAT END AS f,
             CASE WHEN i % 4 = 2 THEN NULL ELSE 'é' || i END AS s,
             CASE WHEN i % 9 = 8 THEN NULL ELSE i % 2 = 0 END AS b,
             (i % 100 - 50)::TINYINT AS ti,
             CASE WHEN i = 5 THEN 18446744073709551615 ELSE i END::UBIGINT AS u,
             CASE WHEN i = 6 THEN 9223372036854775807 ELSE 1 END::BIGINT AS ext
           FROM range(0, 70) t(i) WHERE i NOT IN (17, 18, 40)
        ) ORDER BY (sample_id * 37) % 70"""
    )
    yield conn
    conn.close()


def _fetch_row(conn, sample_id: int) -> dict | None:
    cur = conn.execute("SELECT * FROM samples WHERE sample_id = ?", [sample_id])
    found = cur.fetchone()
    return None if found is None else dict(zip([d[0] for d in cur.description], found, strict=True))


def _fetch_block(conn):
    def fetch(first: int, last: int) -> dict:
        return conn.execute(
            "SELECT * FROM samples WHERE sample_id BETWEEN ? AND ? ORDER BY sample_id", [first, last]
        ).fetchnumpy()

    return fetch


def test_rows_equal_the_databases_one_by_one(table, monkeypatch):
    monkeypatch.setattr(rowcache, "BLOCK", 16)
    cache = RowCache(_fetch_block(table), max_bytes=1 << 30)
    for sample_id in range(75):
        want = _fetch_row(table, sample_id)
        got = cache.row(sample_id)
        assert (got is None) == (want is None), sample_id
        if want is not None:
            assert _same(got, want), (sample_id, got, want)
    assert cache.reads == 5  # blocks 0-15, ..., 64-79: each read once


def test_blocks_past_the_byte_limit_are_dropped_and_read_again(table, monkeypatch):
    monkeypatch.setattr(rowcache, "BLOCK", 16)
    cache = RowCache(_fetch_block(table), max_bytes=1)  # room for the last block only
    for sample_id in (0, 1, 20, 21, 0):
        assert _same(cache.row(sample_id), _fetch_row(table, sample_id))
    assert cache.reads == 3  # 0-15, 16-31, then 0-15 again
    assert list(cache._blocks) == [0]


def test_fill_reads_the_first_blocks_that_fit(table, monkeypatch):
    monkeypatch.setattr(rowcache, "BLOCK", 16)
    full = RowCache(_fetch_block(table), max_bytes=1 << 30)
    assert full.fill(70) == 5 and full.fill(70) == 0  # every block once
    assert list(full._blocks) == [0, 16, 32, 48, 64]
    two = sum(b.nbytes for b in list(full._blocks.values())[:2])
    part = RowCache(_fetch_block(table), max_bytes=two)
    assert part.fill(70) == 2 and list(part._blocks) == [0, 16]  # no block pushed out another
    for sample_id in range(32):  # 17 and 18 are not in the table
        want, got = _fetch_row(table, sample_id), part.row(sample_id)
        assert (got is None) == (want is None) and (want is None or _same(got, want)), sample_id
    assert part.reads == 2


def test_the_served_rows_equal_the_databases(tiny_run, monkeypatch):
    """The tiny run's samples with the cache and without it: every record, and the answers of
    /api/samples/<id> over several blocks."""
    monkeypatch.setattr(rowcache, "BLOCK", 64)  # several blocks on the tiny run
    states, answers = {}, {}
    for size in (64 * 2**20, 0):
        app = create_app(tiny_run, Settings(prewarm=False, row_cache_bytes=size))
        states[size] = state = app.state.samplescope.current()
        assert (state.row_cache is not None) == bool(size)
        with client_class()(app, base_url=LOCAL) as c:
            answers[size] = [c.get(f"/api/samples/{i}").json() for i in range(0, 320, 10)]
    cached, plain = states[64 * 2**20], states[0]
    assert cached.n > 320
    ids = [*range(0, 320, 3), *range(cached.n - 70, cached.n)]  # 5 blocks, and the last one or two
    for i in ids:
        assert _same(cached.row(i), plain.row(i)), i
        assert cached.sample_record(i) == plain.sample_record(i), i
    for i in ids[::7]:  # row() with columns: what RunDatabase.row selects
        assert cached.row(i, ["prediction", "loss"]) == tiny_run.db.row(i, ["prediction", "loss"])
    assert cached.row_cache.reads == len({i // 64 for i in ids})
    assert answers[64 * 2**20] == answers[0]

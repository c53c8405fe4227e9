"""A database replaced on disk (a re-analysis renames a new run into place) is read anew."""

from __future__ import annotations

import os

import pandas as pd

from samplescope.store import RunDatabase


def _write(path, values):
    with RunDatabase(path, writable=True) as db:
        db.write_samples(pd.DataFrame({"sample_id": range(len(values)), "subset": "train", "index": range(len(values)),
                                       "key": [str(v) for v in values], "label": values}))


def test_a_reader_left_open_does_not_hide_the_replaced_file(tmp_path):
    run = tmp_path / "samples.duckdb"
    _write(run, [1, 2, 3])
    old = RunDatabase(run)  # e.g. a Run the user still holds, or a server's handle
    assert old.samples()["label"].tolist() == [1, 2, 3]

    _write(tmp_path / "new.duckdb", [7, 8])
    os.replace(tmp_path / "new.duckdb", run)  # what atomic_folder's rename does to the file

    new = RunDatabase(run)
    assert new.samples()["label"].tolist() == [7, 8]
    assert "samples" in new.tables()
    assert old.samples()["label"].tolist() == [1, 2, 3]  # the open one still reads its own file
    new.close()
    old.close()
    again = RunDatabase(run)  # nothing open any more: a plain connection
    assert again.samples()["label"].tolist() == [7, 8]
    again.close()


def test_readers_of_one_file_share_and_release(tmp_path):
    run = tmp_path / "samples.duckdb"
    _write(run, [5])
    a, b = RunDatabase(run), RunDatabase(run)
    assert a.samples()["label"].tolist() == b.samples()["label"].tolist() == [5]
    a.close()
    b.close()

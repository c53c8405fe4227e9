"""Tags and saved selections: atomic, safe under concurrent writers, kept across re-analyses, exportable."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pandas as pd
import pytest

import samplescope
from samplescope.errors import NotFoundError, ParameterError
from samplescope.testing import make_tiny_run


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("annotations") / "run")


@pytest.fixture
def run(clean, tmp_path):
    path = tmp_path / "run"
    shutil.copytree(clean, path)
    return samplescope.open_run(path)


def test_tag_untag_and_list(run):
    assert run.tags().empty
    assert run.tag([5, 3, 3, 9], "mislabeled") == 3
    assert run.tag(np.array([9, 11]), "mislabeled") == 4
    assert run.tag([1], "relabel:7") == 1
    assert list(run.tagged("mislabeled")) == [3, 5, 9, 11]
    assert run.tags().to_dict("records") == [{"tag": "mislabeled", "count": 4}, {"tag": "relabel:7", "count": 1}]
    assert run.untag("mislabeled", [5, 100]) == 3
    run.rename_tag("relabel:7", "relabel:8")
    assert list(run.tagged("relabel:8")) == [1]
    assert run.untag("relabel:8") == 0
    assert list(run.tags()["tag"]) == ["mislabeled"]


def test_bad_tags_are_refused(run):
    with pytest.raises(ParameterError, match="name '' is not allowed"):
        run.tag([1], "")
    with pytest.raises(ParameterError, match="is not allowed"):
        run.tag([1], "x" * 101)
    with pytest.raises(NotFoundError, match="Sample id 99999 does not exist"):
        run.tag([1, 99999], "t")
    with pytest.raises(ParameterError, match="must be integers"):
        run.tag([1.5], "t")
    with pytest.raises(NotFoundError, match="No tag 'nope'"):
        run.tagged("nope")
    assert run.tags().empty  # nothing half-written


def test_concurrent_writers_lose_nothing(run):
    """Eight threads (say, browser tabs) tag 50 samples each into one tag at the same time."""
    def write(k: int) -> None:
        for i in range(50):
            run.tag([k * 50 + i], "busy")

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert list(run.tagged("busy")) == list(range(400))


def test_tags_and_selections_survive_a_reanalysis_even_one_written_meanwhile(run, monkeypatch):
    run.tag([1, 2, 3], "before")
    run.save_selection("region", [7, 8], note="lasso")
    from samplescope.pipeline import analyze

    real = analyze.write_json

    def tag_meanwhile(path, data):  # the analysis is writing its files: someone tags a sample now
        samplescope.open_run(run.path).tag([42], "during")
        real(path, data)

    monkeypatch.setattr(analyze, "write_json", tag_meanwhile)
    samplescope.analyze_run(run.path, projection="pca", progress=False)
    again = samplescope.open_run(run.path)
    assert list(again.tagged("before")) == [1, 2, 3]
    assert list(again.tagged("during")) == [42]
    assert [(s.name, s.note, list(s.ids)) for s in again.selections()] == [("region", "lasso", [7, 8])]


def test_selections(run):
    sel = run.save_selection("low confidence", [4, 2, 2], note="confidence < 0.5")
    assert (sel.name, sel.note, list(sel.ids)) == ("low confidence", "confidence < 0.5", [2, 4])
    with pytest.raises(ParameterError, match="exists"):
        run.save_selection("low confidence", [1])
    run.save_selection("low confidence", [1], overwrite=True)
    run.rename_selection("low confidence", "lc")
    assert [s.name for s in run.selections()] == ["lc"]
    assert list(run.selection("lc").ids) == [1]
    run.delete_selection("lc")
    assert run.selections() == []
    with pytest.raises(NotFoundError, match="No saved selection 'lc'"):
        run.selection("lc")


@pytest.mark.parametrize("suffix", ["csv", "parquet", "json"])
def test_export_reads_back_equal_to_the_selection(run, tmp_path, suffix):
    ids = [0, 17, 1600, 3]
    run.tag(ids, "export-me")
    out = run.export(tmp_path / f"tagged.{suffix}", tag="export-me")
    back = {"csv": pd.read_csv, "parquet": pd.read_parquet, "json": pd.read_json}[suffix](out)
    want = run.samples(where=[("sample_id", "in", ids)])
    assert list(back["sample_id"]) == sorted(ids)
    for c in ("subset", "label", "prediction"):
        assert list(back[c]) == list(want[c])
    for c in ("loss", "ink"):  # float32 columns: CSV and JSON keep about 8 significant digits
        np.testing.assert_allclose(back[c], want[c], rtol=1e-6)
    assert [str(v) for v in back["label_name"]] == [run.classes[i] for i in want["label"]]
    with pytest.raises(ParameterError, match="exactly one"):
        run.export(tmp_path / "x.csv")
    with pytest.raises(ParameterError, match="name a .csv"):
        run.export(tmp_path / "x.xlsx", [1])

"""Curation: new labels from a file or relabel:X tags, tagged samples left out of training,
and what the new run records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from samplescope.cli import main
from samplescope.curation import COLUMN, CuratedIntegration, curate
from samplescope.errors import NotFoundError, ParameterError
from samplescope.integration.loader import load_integration
from samplescope.run import open_run
from samplescope.testing import make_tiny_run


@pytest.fixture(scope="module")
def tagged_run(tmp_path_factory):
    """The tiny digits run with tags: two relabel:X tags and an exclude tag on train and validation."""
    path = make_tiny_run(tmp_path_factory.mktemp("curation") / "v1")
    run = open_run(path)
    run.tag([3, 5], "relabel:7")
    run.tag([8], "relabel:1")
    n_train = run.info["subsets"]["train"]
    run.tag([0, 1, 2, n_train + 4], "exclude")  # three training samples and one validation sample
    yield run
    run.close()


def test_a_relabel_file_changes_those_labels_everywhere_and_only_those(tmp_path):
    base = load_integration("digits")
    file = tmp_path / "fix.csv"
    pd.DataFrame({"subset": ["train", "validation"], "key": ["10", str(len(base.get_subset("train")) + 2)],
                  "new_label": ["4", "9"]}).to_csv(file, index=False)  # fmt: skip
    integ = curate(base, relabel=file)
    assert isinstance(integ, CuratedIntegration) and integ.identity() == base.identity()
    idx = np.arange(20)
    want = base.encode_labels("train", idx)
    want[10] = 4
    np.testing.assert_array_equal(integ.encode_labels("train", idx), want)
    got_val = integ.encode_labels("validation", np.arange(5))
    assert got_val[2] == 9 and (np.delete(got_val, 2) == np.delete(base.encode_labels("validation", np.arange(5)), 2)).all()
    fate = integ.compute_metadata("train", idx)[COLUMN]
    assert fate[10] == "relabelled" and set(np.delete(fate, 10)) == {"kept"}
    assert integ.record["relabel"] == {"from": "file fix.csv", "samples": 2, "by_new_label": {"4": 1, "9": 1}}


def test_relabel_tags_and_an_exclude_tag_of_another_run(tagged_run):
    integ = curate("digits", relabel="tag:relabel:*", exclude=["exclude"], tags_from=tagged_run.path)
    labels = integ.encode_labels("train", np.arange(10))
    assert labels[3] == 7 and labels[5] == 7 and labels[8] == 1
    keep = integ.training_keep(50)
    assert keep.tolist() == [False] * 3 + [True] * 47  # only the training samples are left out of training
    assert integ.record["exclude"]["by_subset"] == {"train": 3, "validation": 1}
    assert integ.record["relabel"]["from"] == "tags relabel:1, relabel:7"


def test_a_file_by_sample_id_names_the_same_samples(tagged_run, tmp_path):
    file = tmp_path / "ids.json"
    tagged_run.export(file, tag="relabel:7")  # sample_id, subset, key, ..., new_label
    frame = pd.read_json(file)[["sample_id", "new_label"]]
    frame.to_csv(tmp_path / "ids.csv", index=False)
    by_key = curate("digits", relabel=file).relabel
    by_id = curate("digits", relabel=tmp_path / "ids.csv").relabel
    assert by_key == by_id == {("train", "3"): 7, ("train", "5"): 7}


@pytest.mark.parametrize(
    ("rows", "error", "match"),
    [
        ({"subset": ["train"], "key": ["no-such-key"], "new_label": ["1"]}, NotFoundError, "key 'no-such-key'"),
        ({"subset": ["test"], "key": ["1"], "new_label": ["1"]}, NotFoundError, "subset 'test'"),
        ({"subset": ["train"], "key": ["1"], "new_label": ["eleven"]}, ParameterError, "new label 'eleven'"),
        ({"subset": ["train"], "key": ["1"]}, ParameterError, "no new_label column"),
        ({"name": ["x"], "new_label": ["1"]}, ParameterError, "subset and key columns, or sample_id"),
    ],
)
def test_bad_relabel_files_name_the_problem(tmp_path, rows, error, match):
    file = tmp_path / "bad.csv"
    pd.DataFrame(rows).to_csv(file, index=False)
    with pytest.raises(error, match=match):
        curate("digits", relabel=file)


def test_tags_need_a_run_and_must_exist(tagged_run):
    with pytest.raises(ParameterError, match="--tags-from RUN"):
        curate("digits", exclude=["exclude"])
    with pytest.raises(NotFoundError, match="No tag 'nope'"):
        curate("digits", exclude=["nope"], tags_from=tagged_run.path)
    with pytest.raises(NotFoundError, match="no tag relabel:X matching"):
        curate("digits", relabel="tag:relabel:9", tags_from=tagged_run.path)
    assert curate("digits").__class__ is not CuratedIntegration  # nothing to change


def test_train_relabel_exclude_trains_without_them_and_records_it(tagged_run, tmp_path, monkeypatch):
    """`samplescope train --relabel --exclude`: the excluded samples never reach the training
    loop, the relabelled ones reach it with their new label, and the run keeps and records both."""
    from samplescope.train import loop

    seen = {}
    real_train = loop.train

    def spy(model, x, y, *args, **kwargs):
        seen["x"], seen["y"] = x.numpy().copy(), y.numpy().copy()
        return real_train(model, x, y, *args, **kwargs)

    monkeypatch.setattr(loop, "train", spy)
    out = tmp_path / "v2"
    code = main(["train", "--integration", "digits", "--epochs", "1", "--limit", "60", "--out", str(out),
                 "--relabel", "tag:relabel:*", "--exclude", "exclude", "--tags-from", str(tagged_run.path)])  # fmt: skip
    assert code == 0
    base = load_integration("digits")
    kept = np.arange(3, 60)  # train samples 0, 1, 2 are excluded
    np.testing.assert_array_equal(seen["x"], base.encode_inputs("train", kept))
    want = base.encode_labels("train", kept)
    want[[0, 2, 5]] = [7, 7, 1]  # samples 3, 5 -> 7 and 8 -> 1, at rows 0, 2 and 5 of the kept ones
    np.testing.assert_array_equal(seen["y"], want)

    run = open_run(out)
    info = json.loads((out / "run.json").read_text())["curation"]
    assert info["exclude"]["train_samples_left_out"] == 3 and info["relabel"]["samples"] == 3
    assert info["tags_from"] == str(tagged_run.path)
    table = run.samples(columns=["subset", "key", "label", COLUMN])
    assert len(table) == 120  # every sample stays in the run, the excluded ones too
    fate = table.set_index(["subset", "key"])[COLUMN]
    assert fate.loc[("train", "0")] == "excluded" and fate.loc[("train", "5")] == "relabelled"
    assert fate.loc[("train", "30")] == "kept"
    assert table.set_index(["subset", "key"]).loc[("train", "8"), "label"] == 1

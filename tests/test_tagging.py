"""`samplescope tag`: the CLI writes the same tags as run.tag, from insights, selections and ids."""

from __future__ import annotations

import numpy as np
import pytest

import samplescope
from samplescope.cli import main
from samplescope.errors import NotFoundError, ParameterError
from samplescope.testing import make_tiny_run


@pytest.fixture
def run_path(tmp_path):
    return make_tiny_run(tmp_path / "run")


def test_tag_an_insight_kind_restricted_to_a_subset_equals_the_python_loop(run_path, capsys):
    run = samplescope.open_run(run_path)
    kind = run.insights()[0].kind
    ids = sorted({i for c in run.insights(kind=kind) for i in c.sample_ids})
    table = run.samples(columns=["sample_id", "subset"])
    wanted = sorted(set(ids) & set(table.loc[table.subset == "train", "sample_id"]))
    assert main(["tag", str(run_path), "flagged", "--insight", kind, "--subset", "train"]) == 0
    assert f"tagged {len(wanted):,} samples 'flagged'" in capsys.readouterr().out
    assert run.tagged("flagged").tolist() == wanted
    assert main(["tag", str(run_path)]) == 0
    assert f"tag        flagged  {len(wanted):,} samples" in capsys.readouterr().out


def test_ids_selection_and_remove(run_path, capsys):
    run = samplescope.open_run(run_path)
    assert main(["tag", str(run_path), "relabel:7", "--ids", "5, 3,5,11"]) == 0
    assert run.tagged("relabel:7").tolist() == [3, 5, 11]
    run.annotations.save_selection("picked", np.array([11, 20]), note="by hand")
    assert main(["tag", str(run_path), "relabel:7", "--selection", "picked"]) == 0
    assert run.tagged("relabel:7").tolist() == [3, 5, 11, 20]
    assert main(["tag", str(run_path), "relabel:7", "--remove", "--ids", "5"]) == 0
    assert run.tagged("relabel:7").tolist() == [3, 11, 20]
    assert main(["tag", str(run_path)]) == 0
    assert "selection  picked  2 samples  (by hand)" in capsys.readouterr().out
    assert main(["tag", str(run_path), "relabel:7", "--remove"]) == 0
    assert "relabel:7" not in set(run.tags()["tag"])


@pytest.mark.parametrize(("argv", "error", "match"), [
    (["--ids", "3,x"], ParameterError, "--ids 'x' is not a sample id"),
    (["--ids", "99999999"], ParameterError, "--ids '99999999' is not a sample id"),
    (["--ids", "3,\u00b2"], ParameterError, "--ids '\u00b2' is not a sample id"),
    (["--insight", "no_such_kind"], ParameterError, "--insight 'no_such_kind' is not an insight kind"),
    (["--insight", "overfitting"], NotFoundError, "has no insight of kind 'overfitting'"),
    (["--ids", "3", "--subset", "test"], ParameterError, "--subset 'test' is not a subset"),
    ([], ParameterError, "which samples should carry 'x'"),
])
def test_bad_input_is_a_one_line_error(run_path, capsys, argv, error, match):
    with pytest.raises(error, match=match):
        main(["--debug", "tag", str(run_path), "x", *argv])
    assert main(["tag", str(run_path), "x", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and match.split("'")[0] in err
    assert "x" not in set(samplescope.open_run(run_path).tags()["tag"])  # nothing written

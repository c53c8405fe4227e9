"""Population tests: a spec's checks equal pandas on the table; `samplescope test` exits 0 or 1 as they say."""

from __future__ import annotations

import pytest

import samplescope
from samplescope import checks
from samplescope.cli import main
from samplescope.errors import ParameterError
from samplescope.testing import make_tiny_run


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("checks") / "run")


@pytest.fixture(scope="module")
def table(run_path):
    return samplescope.open_run(run_path).samples()


SPEC = """
[[check]]
name = "validation accuracy"
subset = "validation"
metric = "accuracy"
op = ">="
threshold = {acc}

[[check]]
name = "odd, thin sevens and nines"
classes = ["7", 9]
where = {{ even_odd = "odd", ink = {{ max = 0.3 }} }}
metric = "error_rate"
op = "<="
threshold = 1.0

[[check]]
name = "cluster 2 and 3 loss"
cluster = [2, 3]
metric = "mean_loss"
op = "<"
threshold = 100

[[check]]
name = "tagged"
tags = ["seen"]
metric = "count"
op = "=="
threshold = 3
"""


def test_values_equal_pandas(run_path, table, tmp_path):
    run = samplescope.open_run(run_path)
    run_copy = tmp_path / "run"
    import shutil

    shutil.copytree(run_path, run_copy)
    samplescope.open_run(run_copy).tag([1, 5, 9], "seen")
    spec = tmp_path / "checks.toml"
    spec.write_text(SPEC.format(acc=0.5))
    results = checks.evaluate(run_copy, checks.load_spec(spec))
    t = table[table["label"] >= 0]
    val = t[t["subset"] == "validation"]
    assert results[0].value == pytest.approx((val["prediction"] == val["label"]).mean())
    part = t[t["label"].isin([7, 9]) & (t["even_odd"] == "odd") & (t["ink"] <= 0.3)]
    assert results[1].count == len(part)
    assert results[1].value == pytest.approx((part["prediction"] != part["label"]).mean())
    part = t[t["cluster"].isin([2, 3])]
    assert results[2].value == pytest.approx(part["loss"].mean(), rel=1e-5)
    assert results[3].value == 3 and results[3].passed
    assert all(r.passed for r in results), checks.table(results)
    assert run.count() == len(table)


def test_exit_status_follows_the_checks(run_path, tmp_path, capsys):
    spec = tmp_path / "pass.toml"
    spec.write_text('[[check]]\nsubset = "validation"\nmetric = "accuracy"\nop = ">="\nthreshold = 0.1\n')
    assert main(["test", str(run_path), "--spec", str(spec)]) == 0
    spec.write_text('[[check]]\nname = "impossible"\nmetric = "accuracy"\nop = ">"\nthreshold = 1.0\n')
    assert main(["test", str(run_path), "--spec", str(spec)]) == 1
    assert "FAIL  impossible" in capsys.readouterr().out


def test_suggested_spec_passes_on_its_own_run_and_names_the_insights(run_path, tmp_path, capsys):
    assert main(["test", str(run_path), "--suggest"]) == 0
    text = capsys.readouterr().out
    spec = tmp_path / "suggested.toml"
    spec.write_text(text)
    found = checks.load_spec(spec)
    assert any(c.cluster for c in found) or any(c.where for c in found)
    results = checks.evaluate(run_path, found)
    assert all(r.passed for r in results), checks.table(results)


@pytest.mark.parametrize("op", [">=", "<="])
@pytest.mark.parametrize("value", [0.9912345, 0.0123456789, 146.0, 0.1 + 0.2, 1e-9 / 3, -0.51234567, 12345678.9])
def test_suggested_thresholds_round_towards_passing_today(value, op):
    # .6g rounding wrote 0.9912345 as >= 0.991235, which today's run then failed
    threshold = checks._loose(value, op)
    assert checks.OPS[op](value, threshold)
    assert abs(threshold - value) <= abs(value) * 1e-5
    assert float(f"{threshold:.6g}") == threshold  # six significant figures, as written before


@pytest.mark.parametrize(("body", "match"), [
    ('[[check]]\nmetric = "f1"\nthreshold = 1\n', "metric='f1'"),
    ('[[check]]\nmetric = "accuracy"\nop = "~"\nthreshold = 1\n', "op='~'"),
    ('[[check]]\nmetric = "accuracy"\n', "threshold=None"),
    ('[[check]]\nmetric = "accuracy"\nthreshold = 1\ncolour = 1\n', "unknown key"),
    ("x = 1\n", "no \\[\\[check\\]\\]"),
    ("[[check]\n", "not valid TOML"),
])
def test_bad_specs_are_one_line_errors(run_path, tmp_path, body, match):
    spec = tmp_path / "bad.toml"
    spec.write_text(body)
    with pytest.raises(ParameterError, match=match):
        checks.load_spec(spec)


def test_unknown_class_or_column_is_named(run_path, tmp_path):
    spec = tmp_path / "x.toml"
    spec.write_text('[[check]]\nclasses = ["eleven"]\nmetric = "count"\nthreshold = 0\n')
    with pytest.raises(ParameterError, match="class 'eleven'"):
        checks.evaluate(run_path, checks.load_spec(spec))
    spec.write_text('[[check]]\nwhere = { nope = 1 }\nmetric = "count"\nthreshold = 0\n')
    with pytest.raises(samplescope.SamplescopeError, match="unknown column 'nope'"):
        checks.evaluate(run_path, checks.load_spec(spec))

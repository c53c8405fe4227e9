"""MetadataPredictsFailure names a metadata column that drives errors."""

from __future__ import annotations

from samplescope.analysis.insights import MetadataPredictsFailure

from . import make_data, plant_bad_category, plant_metadata_trend


def test_numeric_trend_is_named():
    d = make_data(n_per_class=600, seed=0)
    plant_metadata_trend(d, "difficulty")
    finder = MetadataPredictsFailure()
    insights = finder.find(d.context())
    columns = [i.details["column"] for i in insights]
    print([i.text for i in insights])
    assert columns[0] == "difficulty", columns
    top = insights[0]
    assert top.details["rho"] >= 0.8 and len(top.details["bins"]) == 10
    assert top.text.startswith("Error rate rises with difficulty:")
    assert "lowest decile" in top.text and "Spearman rho" in top.text
    assert "brightness" not in columns  # pure noise is not reported
    assert set(finder.column_table_["column"]) == {"difficulty", "brightness"}


def test_falling_trend_reads_falls():
    d = make_data(n_per_class=600, seed=1)
    plant_metadata_trend(d, "sharpness")
    d.metadata["sharpness"] = 1 - d.metadata["sharpness"]
    [top, *_] = MetadataPredictsFailure().find(d.context())
    assert top.details["column"] == "sharpness" and top.details["rho"] <= -0.8
    assert top.text.startswith("Error rate falls with sharpness:")


def test_bad_category_is_named():
    d = make_data(n_per_class=600, seed=2)
    plant_bad_category(d, "scanner", "b", rate=0.25)
    insights = MetadataPredictsFailure().find(d.context())
    assert [(i.details["column"], i.details.get("value")) for i in insights] == [("scanner", "b")]
    assert insights[0].text.startswith("Samples with scanner = b (")


def test_nothing_on_clean_data():
    assert MetadataPredictsFailure().find(make_data(n_per_class=600, seed=3).context()) == []

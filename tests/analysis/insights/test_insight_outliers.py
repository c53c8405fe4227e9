"""Outliers flags samples far from every training sample."""

from __future__ import annotations

import numpy as np
import pytest

from samplescope.analysis.insights import Outliers
from samplescope.errors import SamplescopeError

from . import make_data, plant_outliers


def test_planted_outliers_are_flagged():
    d = make_data(n_per_class=400, seed=0)
    planted = plant_outliers(d, n=15)
    finder = Outliers()
    [insight] = finder.find(d.context())
    recall = len(set(insight.sample_ids) & set(planted.tolist())) / len(planted)
    print(f"outlier recall {recall:.2f} ({insight.details['n_outliers']} flagged)")
    assert recall >= 0.9
    assert set(insight.sample_ids[:15]) == set(planted.tolist()), "planted points rank first"
    rows = np.isin(d.sample_id, planted)
    assert (finder.scores_[rows] > finder.threshold_).all()
    assert insight.details["by_subset"]["validation"] >= 15
    # about 0.1% of the training set is above its own 99.9th percentile
    assert finder.outliers_[d.subset == "train"].sum() <= 3


def test_bad_quantile():
    with pytest.raises(SamplescopeError, match=r"quantile=1\.5"):
        Outliers(quantile=1.5).find(make_data(n_per_class=20).context())


@pytest.mark.parametrize(("task", "words"), [("classification", "are misclassified"),
                                             ("regression", "have an |error| above the threshold"),
                                             ("multilabel", "are not an exact match")])  # fmt: skip
def test_the_insight_names_errors_in_the_task_words(task, words):
    """The flagged samples' errors are said as the task defines them (not 'misclassified' for regression)."""
    d = make_data(n_per_class=100, seed=0)
    plant_outliers(d, n=10)
    [insight] = Outliers().find(d.context(task=task))
    assert f"of them {words} vs" in insight.text
    assert ("misclassified" in insight.text) == (task == "classification")

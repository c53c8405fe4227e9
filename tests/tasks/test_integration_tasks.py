"""Integration(task=...): what each task needs declared, and what `check` says about ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from samplescope import Integration, Subset
from samplescope.errors import IntegrationError
from samplescope.tasks import MultiLabel, Regression


def _tiny(task, classes, truth):
    integ = Integration("tiny", classes=classes, task=task)

    @integ.subset("train")
    def train(state):
        return Subset(ids=list(range(6)))

    @integ.subset("validation")
    def validation(state):
        return Subset(ids=list(range(6)))

    @integ.input("x", kind="vector")
    def x(sample):
        return np.full(3, sample.index, np.float32)

    integ.ground_truth(truth)
    return integ


def test_what_each_task_needs_declared():
    with pytest.raises(IntegrationError, match="declares no classes"):
        Integration("x")
    with pytest.raises(IntegrationError, match="task 'regression' takes no classes"):
        Integration("x", classes=["a"], task="regression")
    with pytest.raises(IntegrationError, match="task='detection' is unknown"):
        Integration("x", classes=["a"], task="detection")
    reg = Integration("x", task="regression", target="price")
    assert isinstance(reg.task, Regression) and reg.task.target == "price" and reg.classes == []
    assert reg.identity()["task"] == "regression"
    assert isinstance(Integration("x", classes=["a", "b"], task=MultiLabel(threshold=0.3)).task, MultiLabel)


def test_regression_ground_truth_is_checked_and_encoded():
    good = _tiny("regression", None, lambda s: float(s.index) * 1.5 - 2)
    assert good.check().ok
    np.testing.assert_array_equal(good.encode_labels("train", [0, 3]), [-2.0, 2.5])
    bad = _tiny("regression", None, lambda s: "three")
    report = bad.check()
    assert not report.ok and "expected the target as a number" in report.summary_line("tiny.py")


def test_multilabel_ground_truth_is_checked_and_encoded():
    sets = _tiny("multilabel", ["a", "b", "c"], lambda s: [s.index % 3] if s.index % 2 else [0, 2])
    assert sets.check().ok
    np.testing.assert_array_equal(sets.encode_labels("train", [0, 1]), [[1, 0, 1], [0, 1, 0]])
    vectors = _tiny("multilabel", ["a", "b", "c"], lambda s: np.array([1, 0, s.index % 2]))
    np.testing.assert_array_equal(vectors.encode_labels("train", [1]), [[1, 0, 1]])
    bad = _tiny("multilabel", ["a", "b", "c"], lambda s: [5])
    assert "outside 0..2" in bad.check().summary_line("tiny.py")

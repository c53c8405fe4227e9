"""The task objects against references: scikit-learn's metrics, torch's functional losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import metrics as skm

from samplescope.errors import IntegrationError, ParameterError
from samplescope.tasks import Classification, MultiLabel, Regression, get_task, task_from_info
from samplescope.tasks.multilabel import average_precision

CLASSES = [str(i) for i in range(4)]


def test_registry_and_run_json_round_trip():
    assert isinstance(get_task(None), Classification)
    assert isinstance(get_task("multi-label"), MultiLabel)
    reg = get_task("regression", target="progression", threshold=12.5)
    reg.fit(np.array([1.0, 3.0, 5.0]))
    again = task_from_info({"task": reg.to_dict()})
    assert again == reg and again.target_mean_ == 3.0 and again.threshold == 12.5
    assert isinstance(task_from_info({}), Classification)  # old runs name no task
    with pytest.raises(ParameterError, match="task='detection' is unknown"):
        get_task("detection")
    with pytest.raises(ParameterError, match="made for task 'detection'"):
        task_from_info({"task": {"name": "detection"}})


# --------------------------------------------------------------------------- classification


def test_classification_columns_match_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4)) * 3
    labels = rng.integers(0, 4, 50)
    labels[:3] = -1
    cols = Classification().prediction_columns(logits, labels, CLASSES)
    ref = F.cross_entropy(torch.tensor(logits[3:]), torch.tensor(labels[3:]), reduction="none").numpy()
    np.testing.assert_allclose(cols["loss"][3:], ref, rtol=1e-5)
    assert np.isnan(cols["loss"][:3]).all() and not cols["correct"][:3].any()
    np.testing.assert_array_equal(cols["correct"][3:], logits[3:].argmax(1) == labels[3:])


def test_classification_columns_in_row_blocks_match_torch(monkeypatch):
    """Softmax columns computed 7 rows at a time (blocks bound the float64 temporaries) equal torch's."""
    from samplescope.tasks import classification

    monkeypatch.setattr(classification, "_BLOCK", 7)
    rng = np.random.default_rng(1)
    logits = (rng.normal(size=(50, 4)) * 3).astype(np.float32)
    labels = rng.integers(0, 4, 50)
    labels[10] = -1
    cols = Classification().prediction_columns(logits, labels, CLASSES)
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float64), 1).numpy()
    for k in range(4):
        np.testing.assert_allclose(cols[f"prob_{k}"], probs[:, k], rtol=1e-5)
    top = np.sort(probs, axis=1)
    np.testing.assert_allclose(cols["confidence"], top[:, -1], rtol=1e-5)
    np.testing.assert_allclose(cols["margin"], top[:, -1] - top[:, -2], atol=1e-6)
    np.testing.assert_array_equal(cols["prediction"], logits.argmax(1))
    keep = labels >= 0
    ref = F.cross_entropy(torch.tensor(logits[keep]), torch.tensor(labels[keep]), reduction="none").numpy()
    np.testing.assert_allclose(cols["loss"][keep], ref, rtol=1e-5)
    assert np.isnan(cols["loss"][10])


def test_classification_loss_is_torch_cross_entropy():
    z, t = torch.randn(8, 4), torch.randint(0, 4, (8,))
    task = Classification()
    assert torch.allclose(task.loss(z, t, 0.1), F.cross_entropy(z, t, label_smoothing=0.1))
    assert int(task.score_sum(z, t)) == int((z.argmax(1) == t).sum())


# --------------------------------------------------------------------------- regression


def _regression_data(n=200, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 20, n)
    pred = y + rng.normal(0, 8, n)
    return y, pred


def test_regression_metrics_match_sklearn():
    y, pred = _regression_data()
    task = Regression(target="progression")
    outputs = pred[:, None]  # a model that outputs raw units: target_mean_ 0, target_std_ 1
    labels = y.copy()
    labels[:5] = np.nan  # unlabeled rows are left out
    cols = task.prediction_columns(outputs, labels, [], reference=np.ones(len(y), bool))
    import pandas as pd

    m = task.metrics(pd.DataFrame({"label": labels, **cols}), [])
    yl, pl = y[5:], pred[5:]
    assert m["count"] == 195
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(yl, pl))
    assert m["rmse"] == pytest.approx(skm.root_mean_squared_error(yl, pl))
    assert m["r2"] == pytest.approx(skm.r2_score(yl, pl))
    assert m["mean_loss"] == pytest.approx(skm.mean_squared_error(yl, pl))
    assert m["residual_quantiles"]["0.5"] == pytest.approx(np.median(pl - yl))
    np.testing.assert_allclose(cols["loss"][5:], (pl - yl) ** 2, rtol=1e-5)


def test_regression_error_is_worst_validation_decile_or_a_threshold():
    y, pred = _regression_data(300)
    validation = np.arange(300) >= 200
    task = Regression()
    cols = task.prediction_columns(pred[:, None], y, [], reference=validation)
    abs_err = np.abs(pred - y)
    expected = np.quantile(abs_err[validation], 0.9)
    assert task.threshold_ == pytest.approx(expected)
    assert (~cols["correct"][validation]).mean() == pytest.approx(0.1, abs=0.011)
    np.testing.assert_array_equal(cols["correct"], abs_err <= expected)
    assert "worst 10%" in task.error_rule()["rule"]
    fixed = Regression(threshold=5.0)
    cols = fixed.prediction_columns(pred[:, None], y, [], reference=validation)
    np.testing.assert_array_equal(cols["correct"], abs_err <= 5.0)
    assert "> 5" in fixed.error_rule()["rule"]


def test_regression_standardises_targets_and_predictions():
    y = np.array([10.0, 20.0, 30.0, 40.0])
    task = Regression().fit(y)
    z = task.training_targets(y)
    assert z.mean() == pytest.approx(0, abs=1e-6) and z.std() == pytest.approx(1)
    cols = task.prediction_columns(z[:, None], y, [])
    np.testing.assert_allclose(cols["prediction"], y, rtol=1e-6)
    out, t = torch.randn(6, 1), torch.randn(6)
    assert torch.allclose(task.loss(out, t), F.mse_loss(out[:, 0], t))
    # the history's score: its mean is 1 - MSE on standardised targets
    assert float(task.score_sum(out, t)) / 6 == pytest.approx(1 - float(F.mse_loss(out[:, 0], t)), rel=1e-5)


def test_regression_ground_truth_checks():
    task = Regression()
    assert task.label_problem(3.5, []) is None
    assert "expected the target as a number" in task.label_problem("3", [])
    assert "finite" in task.label_problem(float("nan"), [])
    with pytest.raises(IntegrationError, match=r"sample train\[1\] is nan"):
        task.check_labels(np.array([1.0, np.nan]), [], "x", "train")


# --------------------------------------------------------------------------- multi-label


def _multilabel_data(n=300, c=4, seed=2):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype(np.int8)
    logits = (y * 2 - 1) * rng.gamma(1.0, 1.5, (n, c)) + rng.normal(0, 1.5, (n, c))
    return y, logits


def test_multilabel_metrics_match_sklearn():
    import pandas as pd

    y, z = _multilabel_data()
    task = MultiLabel()
    labels = y.copy()
    labels[:4] = -1
    cols = task.prediction_columns(z, labels, CLASSES)
    frame = pd.DataFrame({**task.label_columns(labels, CLASSES), **cols})
    m = task.metrics(frame, CLASSES)
    yl, pl, prob = y[4:], (z[4:] >= 0), 1 / (1 + np.exp(-z[4:]))
    per = m["per_label"]
    np.testing.assert_allclose(per["precision"], skm.precision_score(yl, pl, average=None))
    np.testing.assert_allclose(per["recall"], skm.recall_score(yl, pl, average=None))
    np.testing.assert_allclose(per["f1"], skm.f1_score(yl, pl, average=None))
    np.testing.assert_allclose(per["average_precision"], skm.average_precision_score(yl, prob, average=None))
    assert m["exact_match"] == pytest.approx(skm.accuracy_score(yl, pl))  # subset accuracy
    assert m["label_accuracy"] == pytest.approx(1 - skm.hamming_loss(yl, pl))
    assert m["micro_f1"] == pytest.approx(skm.f1_score(yl, pl, average="micro"))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(yl, pl, average="macro"))
    assert m["count"] == 296 and list(per["name"]) == CLASSES


def test_average_precision_with_ties_matches_sklearn():
    rng = np.random.default_rng(3)
    y = rng.random(100) < 0.4
    scores = rng.integers(0, 5, 100) / 4  # many ties
    assert average_precision(y, scores) == pytest.approx(skm.average_precision_score(y, scores))
    assert np.isnan(average_precision(np.zeros(5, bool), scores[:5]))


def test_multilabel_loss_matches_torch_bce():
    y, z = _multilabel_data(40)
    task = MultiLabel()
    cols = task.prediction_columns(z, y, CLASSES)
    ref = F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y, dtype=torch.float64),
                                             reduction="none").mean(1).numpy()
    np.testing.assert_allclose(cols["loss"], ref, rtol=1e-5)
    np.testing.assert_array_equal(cols["correct"], ((z >= 0) == (y > 0)).all(1))
    out, t = torch.tensor(z), torch.tensor(task.training_targets(y))
    assert torch.allclose(task.loss(out, t), F.binary_cross_entropy_with_logits(out, t.double()))
    assert int(task.score_sum(out, t)) == int(cols["correct"].sum())


def test_multilabel_ground_truth_encodings_and_table_round_trip():
    import pandas as pd

    task = MultiLabel()
    y = task.encode_labels([[1, 3], np.array([1, 0, 0, 0]), []], 3, CLASSES)
    np.testing.assert_array_equal(y, [[0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]])
    both = np.concatenate([y, task.unlabeled(1, CLASSES)])
    cols = task.label_columns(both, CLASSES)
    assert list(cols["label"]) == ["1+3", "0", "none", None]
    np.testing.assert_array_equal(task.labels_from_table(pd.DataFrame(cols), CLASSES), both)
    assert "outside 0..3" in task.label_problem([4], CLASSES)
    assert "more than once" in task.label_problem([1, 1], CLASSES)
    assert "shape (3,)" in task.label_problem(np.array([1, 0, 1]), CLASSES)
    assert task.label_problem(7, CLASSES).startswith("returned 7 (int)")
    with pytest.raises(IntegrationError, match="outside 0..3"):
        task.encode_labels([[9]], 1, CLASSES)

"""The built-in task examples end to end: train -> analyze -> the Python API -> the served API
-> the report, each figure checked against the run's own table (scikit-learn as the reference)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from samplescope import open_run
from samplescope.report.build import build_report

# --------------------------------------------------------------------------- regression: diabetes


def test_diabetes_run_records_the_task_and_its_error_rule(diabetes_run):
    info = json.loads((diabetes_run / "run.json").read_text())
    assert info["task"]["name"] == "regression" and info["task"]["target"] == "disease progression"
    assert info["task"]["target_std"] > 1  # standardised on the training targets
    assert info["integration"]["classes"] == []
    error = info["analysis"]["error"]
    run = open_run(diabetes_run)
    val = run.samples(columns=["label", "prediction", "residual", "abs_error", "loss", "correct"],
                      subset="validation")  # fmt: skip
    assert error["threshold"] == pytest.approx(np.quantile(np.abs(val["prediction"] - val["label"]), 0.9))
    assert "worst 10%" in error["rule"]
    # the contract other layers read: loss per sample, correct = not an error, label and prediction floats
    np.testing.assert_allclose(val["residual"], val["prediction"] - val["label"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(val["loss"], val["residual"] ** 2, rtol=1e-4)
    np.testing.assert_array_equal(val["correct"], val["abs_error"] <= error["threshold"])
    assert val["label"].between(25, 346).all()


def test_diabetes_metrics_match_sklearn_and_the_model_learned(diabetes_run):
    run = open_run(diabetes_run)
    val = run.samples(columns=["label", "prediction"], subset="validation")
    m = run.metrics("validation")
    y, p = val["label"].to_numpy(), val["prediction"].to_numpy()
    assert m["count"] == 89
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert m["rmse"] == pytest.approx(skm.root_mean_squared_error(y, p))
    assert m["r2"] == pytest.approx(skm.r2_score(y, p))
    quantiles = m["residual_quantiles"]
    np.testing.assert_allclose([quantiles[q] for q in quantiles], np.quantile(p - y, [float(q) for q in quantiles]),
                               rtol=1e-6, atol=1e-6)  # fmt: skip
    assert m["r2"] > 0.25  # far better than predicting the mean (R² 0); 0.38 when measured


def test_diabetes_served(diabetes_run, client_for):
    client = client_for(diabetes_run)
    run = client.get("/api/run").json()
    assert run["task"]["name"] == "regression" and run["task"]["views"] == ["regression"]
    assert "label" not in run["class_columns"]
    kinds = {c["name"]: c["kind"] for c in run["columns"]}
    assert kinds["label"] == "numeric" and kinds["prediction"] == "numeric"
    metrics = client.get("/api/metrics?subset=validation").json()
    expected = open_run(diabetes_run).metrics("validation")
    assert metrics["summary"]["mae"] == pytest.approx(expected["mae"])
    assert [h["name"] for h in metrics["headline"]] == ["MAE", "RMSE", "R²"]
    rows = client.get("/api/samples?subset=validation&sort=loss&order=desc&limit=5&columns=residual").json()["data"]
    assert isinstance(rows[0]["label"], float) and rows[0].get("label_name") is None  # no class to name
    assert rows[0]["loss"] >= rows[-1]["loss"]
    answer = client.get("/api/confusion?subset=validation")
    assert answer.status_code == 422 and "no confusion matrix" in answer.json()["detail"]
    assert client.get("/api/map").status_code == 200
    heat = client.get(f"/api/samples/{rows[0]['sample_id']}/heatmap.json?method=integrated_gradients")
    assert heat.status_code == 200, heat.text
    assert heat.json()["target"] == 0  # the one output a regression model has
    wrong = client.get(f"/api/samples/{rows[0]['sample_id']}/heatmap.json?method=integrated_gradients&target=1")
    assert wrong.status_code == 422


def test_diabetes_map_overview_keeps_the_worst_of_each_target_decile(diabetes_run):
    """The map overview of a large run keeps some of every group in every cell, the highest-loss
    first; a regression run's groups are its target's deciles (each distinct target value was a
    group of its own, so the overview was a random draw that ignored the errors)."""
    from samplescope.store.map_queries import overview_ids

    run = open_run(diabetes_run)
    frame = run.samples(columns=["sample_id", "label", "loss"]).sort_values(["label", "sample_id"])
    q, r = divmod(len(frame), 10)  # DuckDB's ntile(10): the first r deciles one row longer
    frame["decile"] = np.repeat(np.arange(10), [q + 1] * r + [q] * (10 - r))
    worst = frame.sort_values(["loss", "sample_id"], ascending=[False, True]).groupby("decile").head(2)
    ids = overview_ids(run.db, 100, grid=1, group=run.task.map_group_sql)  # one cell: the deciles alone
    assert len(ids) <= 100
    assert set(worst["sample_id"]) <= set(ids.tolist())
    counts = frame.set_index("sample_id").loc[ids, "decile"].value_counts()
    assert len(counts) == 10 and counts.min() >= 7  # every decile about a tenth of the overview


def test_diabetes_and_pairs_attributions_match_captum(diabetes_run, pairs_run):
    """What run.heatmap gives for the regression output and a multi-label class is Captum's own:
    Integrated Gradients from the training mean (diabetes' MLP), Grad-CAM on the last conv (pairs)."""
    import torch
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam

    run = open_run(diabetes_run)
    model = run.model().eval()
    x = torch.from_numpy(run.input(400))[None]
    expected = IntegratedGradients(model).attribute(x, baselines=model.normalize.mean[None], target=0, n_steps=50,
                                                    method="gausslegendre")[0].detach().numpy()  # fmt: skip
    np.testing.assert_allclose(run.heatmap(400, target=0, method="integrated_gradients"), expected, rtol=1e-4,
                               atol=1e-5)  # fmt: skip

    run = open_run(pairs_run)
    model = run.model().eval()
    layer = dict(model.named_modules())[run.info.get("gradcam_layer") or
                                        [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)][-1]]
    x = torch.from_numpy(run.input(1300))[None]
    cam = LayerGradCam(model, layer).attribute(x, target=3, relu_attributions=True)
    expected = LayerAttribution.interpolate(cam, x.shape[-2:], "bilinear")[0, 0].detach().numpy()
    np.testing.assert_allclose(run.heatmap(1300, target=3, method="gradcam"), expected, rtol=1e-4, atol=1e-5)


def test_diabetes_report(diabetes_run, tmp_path):
    out = build_report(diabetes_run, tmp_path / "report", progress=False)
    page = (out / "report.html").read_text()
    assert (out / "regression.png").exists() and not (out / "confusion.png").exists()
    m = open_run(diabetes_run).metrics("validation")
    assert f"MAE {m['mae']:.4g}" in page and "Predicted vs true" in page


# --------------------------------------------------------------------------- multi-label: MNIST pairs


def test_pairs_ground_truth_and_table(pairs_run):
    run = open_run(pairs_run)
    assert run.task.name == "multilabel"
    frame = run.samples(columns=["label", *[f"label_{k}" for k in range(10)], "same_digit"], limit=300)
    sets = frame[[f"label_{k}" for k in range(10)]].to_numpy(bool)
    # one label when both halves show the same digit, two otherwise
    np.testing.assert_array_equal(sets.sum(1), np.where(frame["same_digit"], 1, 2))
    assert all(t == "+".join(str(k) for k in np.flatnonzero(row)) for t, row in zip(frame["label"], sets))
    x = run.input(0)
    assert x.shape == (1, 28, 56)


def test_pairs_metrics_match_sklearn_and_the_model_learned(pairs_run):
    run = open_run(pairs_run)
    cols = [f"{p}_{k}" for p in ("label", "pred", "prob") for k in range(10)]
    val = run.samples(columns=[*cols, "correct"], subset="validation")
    y = val[[f"label_{k}" for k in range(10)]].to_numpy(bool)
    p = val[[f"pred_{k}" for k in range(10)]].to_numpy(bool)
    prob = val[[f"prob_{k}" for k in range(10)]].to_numpy(np.float64)
    m = run.metrics("validation")
    per = m["per_label"]
    for name, reference in (("precision", skm.precision_score), ("recall", skm.recall_score)):
        np.testing.assert_allclose(per[name], reference(y, p, average=None, zero_division=np.nan), equal_nan=True)
    np.testing.assert_allclose(per["f1"], skm.f1_score(y, p, average=None))
    np.testing.assert_allclose(per["average_precision"], skm.average_precision_score(y, prob, average=None),
                               rtol=1e-6)  # fmt: skip
    assert m["exact_match"] == pytest.approx(skm.accuracy_score(y, p))
    assert m["exact_match"] == pytest.approx(val["correct"].mean())
    assert m["macro_f1"] > 0.5  # 6 short epochs on 1,200 pairs: far above chance


def test_pairs_served_and_reported(pairs_run, client_for, tmp_path):
    client = client_for(pairs_run)
    run = client.get("/api/run").json()
    assert run["task"]["views"] == ["per_label"]
    metrics = client.get("/api/metrics?subset=validation").json()
    assert len(metrics["per_label"]) == 10 and metrics["per_label"][3]["name"] == "3"
    rows = client.get("/api/samples?subset=validation&label_3=true&limit=20&columns=label_3").json()["data"]
    assert rows and all(r["label_3"] is True and "3" in r["label"].split("+") for r in rows)
    image = client.get(f"/api/samples/{rows[0]['sample_id']}/image.png")
    assert image.status_code == 200
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(image.content)).size == (56, 28)
    out = build_report(pairs_run, tmp_path / "report", progress=False)
    assert (out / "per_label.png").exists() and "Per-label metrics" in (out / "report.html").read_text()


def test_compare_and_checks_read_the_task(diabetes_run, pairs_run):
    from samplescope.checks import Check, evaluate
    from samplescope.compare import compare

    cmp = compare(diabetes_run, diabetes_run)
    summary = cmp.summary.set_index("subset")
    val = open_run(diabetes_run).samples(columns=["correct"], subset="validation")
    assert summary.loc["validation", "samples"] == len(val)  # every patient labelled, negative or not
    assert summary.loc["validation", "still_wrong"] == int((~val["correct"]).sum())
    assert cmp.by("label")["samples"].sum() == 442  # targets binned, not read as class indices
    # a multi-label population: the validation pairs that show a 3
    run = open_run(pairs_run)
    val = run.samples(columns=["label_3", "correct"], subset="validation")
    shows_3 = val[val["label_3"].astype(bool)]
    check = Check(name="3s", metric="accuracy", op=">=", threshold=0.0, subset="validation", classes=("3",))
    (result,) = evaluate(run, [check])
    assert result.count == len(shows_3) and result.value == pytest.approx(shows_3["correct"].mean())

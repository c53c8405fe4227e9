"""The seed's observations, checked on a real MNIST run (all 70,000 samples) and reported.

The model is the default CNN trained for one epoch (about 99%), so the suite
stays within CI's budget; the figures are written to tests/_artifacts/mnist_observations.json.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

import samplescope

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts"
REPORT: dict = {}


@pytest.fixture(scope="module")
def run(mnist_env, tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the autouse fixture's one thread would make this slow
    out = samplescope.train_run("mnist", tmp_path_factory.mktemp("mnist") / "mnist", epochs=1, progress=False)
    samplescope.analyze_run(out, progress=False)
    torch.set_num_threads(threads)
    yield samplescope.open_run(out)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "mnist_observations.json").write_text(json.dumps(REPORT, indent=2, default=float))


def test_accuracy_and_timings_reported(run):
    a = run.info["analysis"]
    REPORT["accuracy"] = a["accuracy"]
    REPORT["analyze_seconds"] = a["seconds"]
    assert a["accuracy"]["validation"] > 0.98


def test_map_separates_the_classes(run):
    from sklearn.neighbors import KNeighborsClassifier

    df = run.samples(columns=["subset", "label", "map_x", "map_y"])
    train, val = df[df.subset == "train"], df[df.subset == "validation"]
    knn = KNeighborsClassifier(n_neighbors=10).fit(train[["map_x", "map_y"]], train["label"])
    agreement = float((knn.predict(val[["map_x", "map_y"]]) == val["label"]).mean())
    REPORT["map_knn_agreement_validation"] = agreement
    assert agreement > 0.9, agreement


def test_projection_is_deterministic_for_a_seed(run):
    from samplescope.analysis.projection import Projection

    latent = np.asarray(run.latent()[:3000])
    a = Projection(random_state=3, fit_size=1000).fit_transform(latent)
    b = Projection(random_state=3, fit_size=1000).fit_transform(latent)
    np.testing.assert_array_equal(a, b)


def test_errors_lie_nearer_another_centroid(run):
    """The seed's '5 nearer the 6-centroid': errors are often nearer the predicted class's centroid."""
    df = run.samples(subset="validation")
    pred_dist = df.apply(lambda r: r[f"dist_to_centroid_{int(r.prediction)}"], axis=1)
    wrong, right = df[~df.correct], df[df.correct]
    share_pred_nearer = float((pred_dist[~df.correct] < wrong.dist_to_gt_centroid).mean())
    share_not_own_wrong = float((wrong.gt_centroid_rank > 1).mean())
    share_not_own_right = float((right.gt_centroid_rank > 1).mean())
    REPORT["centroids"] = {
        "misclassified": len(wrong),
        "misclassified_predicted_centroid_nearer_than_own": share_pred_nearer,
        "misclassified_own_centroid_not_nearest": share_not_own_wrong,
        "correct_own_centroid_not_nearest": share_not_own_right,
    }
    assert share_not_own_wrong > share_not_own_right


def test_mean_loss_rises_with_distance_to_own_centroid(run):
    agg = run.aggregate("dist_to_gt_centroid", y="loss", bins=10)
    rho = float(spearmanr(agg["bin"], agg["mean"]).statistic)
    REPORT["loss_vs_dist_to_gt_centroid"] = {"spearman_rho_of_binned_means": rho,
                                             "mean_loss_per_bin": agg["mean"].round(4).tolist()}
    assert rho > 0.8, agg


def test_nearest_classes_on_the_map_are_the_confused_ones(run):
    df = run.samples(columns=["subset", "label", "prediction", "map_x", "map_y"])
    centre = df.groupby("label")[["map_x", "map_y"]].median().to_numpy()  # (10, 2)
    conf = run.metrics("validation")["confusion"] + run.metrics("train")["confusion"]
    pairs = list(itertools.combinations(range(10), 2))
    dist = np.array([np.linalg.norm(centre[a] - centre[b]) for a, b in pairs])
    mixed = np.array([conf[a, b] + conf[b, a] for a, b in pairs])
    rho = float(spearmanr(dist, mixed).statistic)
    REPORT["pairs"] = {
        "nearest_on_map": [f"{pairs[i][0]}-{pairs[i][1]}" for i in np.argsort(dist)[:5]],
        "most_confused": [f"{pairs[i][0]}-{pairs[i][1]} ({mixed[i]})" for i in np.argsort(-mixed)[:5]],
        "spearman_map_distance_vs_confusions": rho,
    }
    assert rho < 0, REPORT["pairs"]  # nearer on the map, more often mixed up

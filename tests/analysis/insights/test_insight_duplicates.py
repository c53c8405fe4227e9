"""Duplicates finds copies inside a subset and leakage across subsets."""

from __future__ import annotations

import numpy as np
import pytest

from samplescope.analysis.insights import Duplicates
from samplescope.errors import SamplescopeError

from . import make_data, plant_duplicates, plant_leakage


def _pairs(insight) -> set[tuple[int, int]]:
    return {(a, b) for a, b, _ in insight.details["pairs"]}


def _by_kind(insights, kind, subset=None):
    return [
        i
        for i in insights
        if i.kind == kind and (subset is None or i.details.get("subset", None) == subset)
    ]


def test_leakage_and_duplicates_are_found_in_pixel_space():
    d = make_data(n_per_class=400, seed=0)
    leaked = plant_leakage(d, n_exact=20, n_near=20)
    copies = plant_duplicates(d, "train", n=10)
    insights = Duplicates().find(d.context())

    [leak] = _by_kind(insights, "leakage")
    recall = len(_pairs(leak) & set(leaked)) / len(leaked)
    print(f"leakage recall {recall:.2f} ({leak.details['n_pairs']} pairs reported)")
    assert recall >= 0.9, f"leakage recall {recall:.2f}"
    assert leak.details["subsets"] == ["train", "validation"]
    assert leak.details["n_identical_pixels"] >= 20
    assert leak.details["distance_metric"] == "pixel_l2"
    assert "validation samples" in leak.text and "near-duplicate in train" in leak.text

    [dup] = _by_kind(insights, "duplicate", "train")
    found = {tuple(sorted(p)) for p in _pairs(dup)}
    recall = len(found & {tuple(sorted(p)) for p in copies}) / len(copies)
    print(f"duplicate recall {recall:.2f}")
    assert recall >= 0.9
    assert not _by_kind(insights, "duplicate", "validation")


def test_leakage_found_in_latent_space_without_inputs():
    d = make_data(n_per_class=400, seed=1)
    leaked = plant_leakage(d, n_exact=20, n_near=0)
    [leak] = _by_kind(Duplicates().find(d.context(with_inputs=False)), "leakage")
    recall = len(_pairs(leak) & set(leaked)) / len(leaked)
    assert recall >= 0.9, f"latent leakage recall {recall:.2f}"
    assert leak.details["distance_metric"] == "latent_cosine"


def test_clean_data_has_no_duplicates():
    assert Duplicates().find(make_data(n_per_class=400, seed=2).context()) == []


def test_a_large_group_of_copies_is_found_in_full():
    d = make_data(n_per_class=200, seed=3)
    rows = d.rows_of("train")[:30]
    d.pixels[rows] = d.pixels[rows[0]]
    finder = Duplicates(n_candidates=2)
    [dup] = finder.find(d.context())
    assert set(d.sample_id[rows].tolist()) <= set(dup.sample_ids)
    assert dup.details["n_identical_pixels"] >= 29


def test_inputs_with_wrong_shape_are_rejected():
    d = make_data(n_per_class=20)
    ctx = d.context()
    ctx.inputs = lambda rows: np.zeros((len(rows) + 1, 4), np.float32)
    with pytest.raises(SamplescopeError, match=r"inputs returned shape \(\d+, 4\) for \d+ rows"):
        Duplicates().find(ctx)

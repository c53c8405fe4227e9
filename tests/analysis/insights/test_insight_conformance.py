"""Every insight finder passes the same table of checks (Captum-style conformance)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from samplescope.analysis.insights import (
    Duplicates,
    Insight,
    InsightFinder,
    LikelyMislabels,
    LowPerformanceClusters,
    MetadataPredictsFailure,
    Outliers,
)
from samplescope.checks import parse_check

from . import make_problem_data

FINDERS: list[type[InsightFinder]] = [
    LowPerformanceClusters,
    LikelyMislabels,
    Duplicates,
    Outliers,
    MetadataPredictsFailure,
]


@pytest.fixture(scope="module")
def problem_data():
    return make_problem_data(seed=0)[0]


@pytest.mark.parametrize("finder_cls", FINDERS, ids=lambda c: c.__name__)
def test_finder_conformance(finder_cls, problem_data):
    ctx = problem_data.context()
    before = ctx.samples.copy()
    finder = finder_cls(random_state=0)
    insights = finder.find(ctx)

    assert isinstance(insights, list) and insights, f"{finder_cls.__name__} found nothing to check"
    pd.testing.assert_frame_equal(ctx.samples, before)  # finders never write to the table
    ids = set(ctx.samples["sample_id"].tolist())
    for insight in insights:
        assert isinstance(insight, Insight)
        assert insight.kind in finder.kinds
        assert 0.0 <= insight.severity <= 1.0
        assert insight.text.strip() and insight.title.strip()
        assert insight.sample_ids, "an insight names the samples involved"
        assert set(insight.sample_ids) <= ids, "sample_ids must be sample_id values, not rows"
        assert len(set(insight.sample_ids)) == len(insight.sample_ids)
        d = insight.to_dict()
        assert json.loads(json.dumps(d, allow_nan=False)) == d
        # every insight says what to do, and its population test is a valid samplescope-test check
        act = insight.details["action"]
        assert act["verb"] in ("relabel", "remove_duplicates", "collect", "watch") and act["text"]
        if "test" in act:
            check = parse_check(act["test"], f"{insight.kind} test")
            assert check.metric in ("error_rate", "count", "mean_loss", "accuracy")
        assert insight.details["accounted_errors"] >= 0

    # deterministic for a random_state, on a fresh context
    again = finder_cls(random_state=0).find(problem_data.context())
    assert [i.to_dict() for i in again] == [i.to_dict() for i in insights]

    # scikit-learn style: parameters round-trip, learned state ends in "_"
    clone = finder_cls(**finder.get_params())
    assert clone.get_params() == finder.get_params()
    assert repr(clone).startswith(finder_cls.__name__ + "(")
    for name, value in vars(finder).items():
        if isinstance(value, np.ndarray) and value.ndim == 1 and len(value) == ctx.n_rows:
            assert name.endswith("_")


def test_forced_index_finds_the_same_planted_faults():
    """The IVF index forced on (exact_max=0) agrees with exact search on neighbours and insights."""
    from samplescope.analysis.insights import find_insights
    from samplescope.analysis.neighbors import NeighborIndex

    d, planted = make_problem_data(seed=0)
    found = {}
    for name, exact_max in (("exact", 10**6), ("ivf", 0)):
        engine = NeighborIndex(exact_max=exact_max).fit(d.latent)
        assert engine.kind_ == name
        found[name] = (engine, find_insights(d.context(neighbors=engine), n_threads=1))
    exact, approx = found["exact"][0], found["ivf"][0]
    truth, _ = exact.kneighbors(k=10)
    graph, _ = approx.kneighbors(k=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(graph, truth, strict=True)])
    assert recall >= 0.95 and approx.recall_ >= 0.95, (recall, approx.recall_)

    def by_kind(insights):
        out: dict[str, set[int]] = {}
        for i in insights:
            out.setdefault(i.kind, set()).update(i.sample_ids)
        return out

    kinds = {name: by_kind(insights) for name, (_, insights) in found.items()}
    assert set(kinds["exact"]) == set(kinds["ivf"])
    for kind, key in (("outlier", "outliers"), ("leakage", "leakage"), ("mislabel", "mislabels")):
        ids = set(np.ravel(np.asarray(planted[key])).tolist())
        hits = {name: len(kinds[name][kind] & ids) / len(ids) for name in kinds}
        assert hits["ivf"] >= hits["exact"] - 0.05 and hits["ivf"] > 0.8, (kind, hits)

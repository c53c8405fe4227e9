"""Confusion matrices, per-class metrics, binned aggregates and training curves."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query

from samplescope.server.deps import State, SubsetParam
from samplescope.server.models import (
    AggregatePublic,
    ConfusionPublic,
    MetricsPublic,
    TablePublic,
)
from samplescope.server.state import CLASS_COLUMNS, ServerState

router = APIRouter(prefix="/api", tags=["metrics"])
#: ``y=`` names that are not columns.
Y_ALIASES = {"accuracy": "correct", "count": "loss"}


@router.get("/confusion", response_model=ConfusionPublic)
def read_confusion(state: State, subset: SubsetParam) -> ConfusionPublic:
    """Counts of (ground truth, prediction) pairs; rows are the ground truth."""
    name = _metrics_subset(state, subset)
    metrics = state.call(state.run.metrics, subset=name)
    matrix = np.asarray(metrics["confusion"]).astype(int).tolist()
    return ConfusionPublic(subset=name, classes=state.classes, matrix=matrix)


@router.get("/metrics", response_model=MetricsPublic)
def read_metrics(state: State, subset: SubsetParam) -> MetricsPublic:
    """Accuracy, mean loss and per-class precision, recall and counts of one subset."""
    name = _metrics_subset(state, subset)
    metrics = state.call(state.run.metrics, subset=name)
    per_class = metrics.get("per_class")
    rows = state.records(per_class) if isinstance(per_class, pd.DataFrame) else []
    return MetricsPublic(
        subset=name,
        accuracy=_float(metrics.get("accuracy")),
        mean_loss=_float(metrics.get("mean_loss")),
        per_class=rows,
    )


@router.get("/aggregate", response_model=AggregatePublic)
def read_aggregate(
    state: State,
    subset: SubsetParam,
    x: Annotated[str, Query(description="column on the x axis; binned when numeric")],
    y: Annotated[str, Query(description="column averaged per bin, or accuracy / count")] = "loss",
    by: Annotated[str | None, Query(description="split into one series per value")] = None,
    bins: Annotated[int, Query(ge=1, le=200)] = 10,
) -> AggregatePublic:
    """``y`` averaged over bins of ``x`` (e.g. mean loss vs distance to class centroid)."""
    column = Y_ALIASES.get(y, y)
    state.check_columns([x, column] + ([by] if by else []))
    frame = state.call(state.run.aggregate, x, y=column, by=by or None, subset=subset, bins=bins)
    for name, col in (("x_value", x), (by, by)):
        if name and name in frame.columns and col in CLASS_COLUMNS:
            frame = frame.assign(**{f"{name}_name": state.class_names(frame[name])})
    return AggregatePublic(
        x=x, y=y, by=by, subset=subset, kind=state.kinds[x], data=state.records(frame)
    )


@router.get("/history", response_model=TablePublic)
def read_history(state: State) -> TablePublic:
    """Training curves: one row per logged step or epoch (``kind``)."""
    frame = state.call(state.run.history)
    return TablePublic(data=state.records(frame), count=len(frame))


def _metrics_subset(state: ServerState, subset: str | None) -> str:
    if subset:
        return subset
    return "validation" if "validation" in state.subsets else state.subsets[0]


def _float(value: object) -> float | None:
    if value is None:
        return None
    v = float(value)  # type: ignore[arg-type]
    return None if np.isnan(v) else v

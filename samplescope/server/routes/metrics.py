"""Confusion matrices, per-class metrics, binned aggregates and training curves."""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Response

from samplescope.errors import ParameterError
from samplescope.server.deps import State, SubsetParam
from samplescope.server.limits import MAX_BINS, MAX_GROUPS
from samplescope.server.models import (
    AggregatePublic,
    ConfusionPublic,
    MetricsPublic,
    TablePublic,
)
from samplescope.server.openapi import errors
from samplescope.server.state import ServerState

router = APIRouter(prefix="/api", tags=["metrics"])
#: ``y=`` names that are not columns.
Y_ALIASES = {"accuracy": "correct", "count": "loss"}


@router.get("/confusion", response_model=ConfusionPublic, responses=errors(422))
def read_confusion(state: State, subset: SubsetParam) -> ConfusionPublic:
    """Counts of (ground truth, prediction) pairs; rows are the ground truth."""
    name = _metrics_subset(state, subset)
    if "confusion" not in state.task.views:
        raise ParameterError(
            f"a {state.task.name} run has no confusion matrix (it needs one class per sample); "
            "read /api/metrics for its metrics"
        )
    metrics = state.call(state.run.metrics, subset=name)
    matrix = np.asarray(metrics["confusion"]).astype(int).tolist()
    return ConfusionPublic(subset=name, classes=state.classes, matrix=matrix)


@router.get("/metrics", response_model=MetricsPublic, responses=errors(422))
def read_metrics(state: State, subset: SubsetParam) -> MetricsPublic:
    """Accuracy, mean loss and per-class precision, recall and counts of one subset."""
    name = _metrics_subset(state, subset)
    metrics = state.call(state.run.metrics, subset=name)
    per_class = metrics.get("per_class")
    rows = state.records(per_class) if isinstance(per_class, pd.DataFrame) else []
    per_label = metrics.get("per_label")
    labels = json.loads(per_label.to_json(orient="records")) if isinstance(per_label, pd.DataFrame) else []
    return MetricsPublic(
        subset=name,
        task=state.task.name,
        accuracy=_float(metrics.get("accuracy")),
        mean_loss=_float(metrics.get("mean_loss")),
        per_class=rows,
        summary=_scalars(metrics),
        per_label=labels,
        headline=[{"name": k, "value": _float(v)} for k, v in state.task.headline(metrics)],
    )


def _scalars(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The numbers of a metrics dict, nested quantiles flattened (``residual_q0.05``)."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update({f"residual_q{q}": _float(v) for q, v in value.items()})
        elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            out[key] = _float(value)
    return out


@router.get("/aggregate", response_model=AggregatePublic, responses=errors(422, 503))
async def read_aggregate(
    state: State,
    subset: SubsetParam,
    x: Annotated[str, Query(description="column on the x axis; binned when numeric")],
    y: Annotated[str, Query(description="column averaged per bin, or accuracy / count")] = "loss",
    by: Annotated[
        str | None,
        Query(description=f"split into one series per value (a column of at most {MAX_GROUPS})"),
    ] = None,
    bins: Annotated[int, Query(ge=1, le=MAX_BINS, description=f"1 to {MAX_BINS}")] = 10,
) -> Response:
    """``y`` averaged over bins of ``x`` (e.g. mean loss vs distance to class centroid).

    At most ``MAX_GROUPS`` series (values of ``by``) of ``MAX_BINS`` bins each; computed in
    the compute lane (503 when busy or too slow)."""
    column = Y_ALIASES.get(y, y)
    by = by or None
    state.check_columns([x, column] + ([by] if by else []))
    _check_aggregate(state, x, column, by)
    body = await state.compute_lane.run(_aggregate_json, state, x, y, column, by, subset, bins)
    return Response(body, media_type="application/json")


def _aggregate_json(
    state: ServerState, x: str, y: str, column: str, by: str | None, subset: str | None, bins: int
) -> bytes:
    """The whole answer, JSON included, on the lane's thread: the event loop never holds it."""
    frame = state.aggregate(x, column, by, subset, bins)
    for name, col in (("x_value", x), (by, by)):
        if name and name in frame.columns and col in state.class_columns:
            frame = frame.assign(**{f"{name}_name": state.class_names(frame[name])})
    answer = AggregatePublic(
        x=x, y=y, by=by, subset=subset, kind=state.kinds[x], data=state.records(frame)
    )
    return answer.model_dump_json().encode()


@router.get("/history", response_model=TablePublic, responses=errors())
def read_history(state: State) -> TablePublic:
    """Training curves: one row per logged step or epoch (``kind``)."""
    frame = state.call(state.run.history)
    return TablePublic(data=state.records(frame), count=len(frame))


def _check_aggregate(state: ServerState, x: str, y: str, by: str | None) -> None:
    """The limits the schema states as enums, with messages that name them."""
    if x not in state.aggregate_x_columns():
        raise ParameterError(
            f"x={x!r} is grouped by value and has {state.distinct_counts[x]:,} values; at most "
            f"{MAX_BINS} are allowed (MAX_BINS); pick a numeric x, which is binned"
        )
    if state.kinds[y] not in ("numeric", "bool"):
        raise ParameterError(
            f"y={y!r} is {state.kinds[y]}, not a quantity; pick a numeric column, accuracy or count"
        )
    if by is not None and by not in state.aggregate_by_columns():
        raise ParameterError(
            f"by={by!r} has {state.distinct_counts[by]:,} distinct values; at most {MAX_GROUPS} "
            "series are allowed (MAX_GROUPS); split by a column with fewer values "
            "(a class, a cluster or the subset)"
        )


def _metrics_subset(state: ServerState, subset: str | None) -> str:
    if subset:
        return subset
    return "validation" if "validation" in state.subsets else state.subsets[0]


def _float(value: object) -> float | None:
    if value is None:
        return None
    v = float(value)  # type: ignore[arg-type]
    return None if np.isnan(v) else v

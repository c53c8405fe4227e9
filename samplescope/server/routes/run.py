"""GET /api/run: what the page needs to know before it draws anything."""

from __future__ import annotations

import math

from fastapi import APIRouter

from samplescope.server.deps import State
from samplescope.server.limits import MAX_VIEWPORT
from samplescope.server.models import (
    ColumnPublic,
    MapInfoPublic,
    RunPublic,
    SubsetPublic,
    TaskPublic,
    TrustPublic,
)
from samplescope.server.openapi import errors

router = APIRouter(prefix="/api", tags=["run"])


@router.get("/run", response_model=RunPublic, responses=errors())
def read_run(state: State) -> RunPublic:
    """Name, classes, subsets with their accuracy, and every column with its kind."""
    subsets = [
        SubsetPublic(
            name=str(r["subset"]),
            count=int(r["count"]),
            accuracy=_float(r["accuracy"]),
            mean_loss=_float(r["mean_loss"]),
        )
        for r in state.subset_rows
    ]
    return RunPublic(
        name=state.run.name,
        path=str(state.run.path),
        classes=state.classes,
        subsets=subsets,
        count=state.n,
        columns=[ColumnPublic(name=c, kind=k) for c, k in state.kinds.items()],
        class_columns=[c for c in state.class_columns if c in state.columns],
        latent_layer=getattr(state.run, "latent_layer", None),
        has_map=state.has_map,
        map=MapInfoPublic(
            sampled=state.sampled,
            full_max=state.settings.map_full_max,
            overview_points=state.settings.map_overview_points,
            viewport_points=MAX_VIEWPORT,
        ),
        info=state.run.info,
        trust=TrustPublic(**state.run.trust_status()),
        input_kind=state.run.input_kind,
        attribution=state.run.attribution_methods(),
        pictures=state.picture_problem,
        task=TaskPublic(
            name=state.task.name,
            views=list(state.task.views),
            target=getattr(state.task, "target", None),
            error=((state.run.info.get("analysis") or {}).get("error") or {}).get("rule"),
        ),
    )


def _float(value: object) -> float | None:
    if value is None:
        return None
    v = float(value)  # type: ignore[arg-type]
    return None if math.isnan(v) else v

"""GET /api/run: what the page needs to know before it draws anything."""

from __future__ import annotations

from fastapi import APIRouter

from samplescope.server.deps import State
from samplescope.server.models import ColumnPublic, RunPublic, SubsetPublic, TrustPublic
from samplescope.server.openapi import errors
from samplescope.server.state import CLASS_COLUMNS

router = APIRouter(prefix="/api", tags=["run"])


@router.get("/run", response_model=RunPublic, responses=errors())
def read_run(state: State) -> RunPublic:
    """Name, classes, subsets with their accuracy, and every column with its kind."""
    f = state.frame
    subsets = []
    for name in state.subsets:
        rows = f[f["subset"] == name]
        labelled = rows[rows["label"].notna()]
        subsets.append(
            SubsetPublic(
                name=name,
                count=len(rows),
                accuracy=float(labelled["correct"].mean()) if len(labelled) else None,
                mean_loss=float(labelled["loss"].mean()) if len(labelled) else None,
            )
        )
    return RunPublic(
        name=state.run.name,
        path=str(state.run.path),
        classes=state.classes,
        subsets=subsets,
        count=len(f),
        columns=[ColumnPublic(name=c, kind=k) for c, k in state.kinds.items()],
        class_columns=[c for c in CLASS_COLUMNS if c in f.columns],
        latent_layer=getattr(state.run, "latent_layer", None),
        has_map="map_x" in f.columns and "map_y" in f.columns,
        info=state.run.info,
        trust=TrustPublic(**state.run.trust_status()),
    )

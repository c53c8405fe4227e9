"""Summary of a set of samples (a box or lasso selection on the map). Reads only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from samplescope.server import queries
from samplescope.server.deps import State, parse_ids
from samplescope.server.limits import MAX_IDS
from samplescope.server.models import SelectionPublic, SelectionQuery
from samplescope.server.openapi import errors

router = APIRouter(prefix="/api", tags=["selection"])


@router.get("/selection", response_model=SelectionPublic, responses=errors(404, 422))
def selection_get(
    state: State,
    ids: Annotated[str, Query(description=f"sample ids, comma separated, at most {MAX_IDS:,}")],
) -> SelectionPublic:
    """Count, accuracy, mean loss, class mix and the highest-loss examples of a selection."""
    wanted = parse_ids(ids, max_ids=MAX_IDS)
    return SelectionPublic(**queries.selection_stats(state, wanted))


@router.post("/selection", response_model=SelectionPublic, responses=errors(404, 422))
def selection_post(state: State, query: SelectionQuery) -> SelectionPublic:
    """The same as GET, for selections too large for a URL (a body of at most 2 MiB,
    ``MAX_BODY_BYTES``). Changes nothing."""
    return SelectionPublic(**queries.selection_stats(state, query.ids))

"""Summary of a set of samples (a box or lasso selection on the map). Reads only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from samplescope.errors import ParameterError
from samplescope.server import queries
from samplescope.server.deps import State, parse_ids
from samplescope.server.models import SelectionPublic, SelectionQuery

router = APIRouter(prefix="/api", tags=["selection"])


@router.get("/selection", response_model=SelectionPublic)
def selection_get(
    state: State, ids: Annotated[str, Query(description="sample ids, comma separated")]
) -> SelectionPublic:
    """Count, accuracy, mean loss, class mix and the highest-loss examples of a selection."""
    wanted = parse_ids(ids, max_ids=state.settings.max_ids)
    return SelectionPublic(**queries.selection_stats(state, wanted))


@router.post("/selection", response_model=SelectionPublic)
def selection_post(state: State, query: SelectionQuery) -> SelectionPublic:
    """The same as GET, for selections too large for a URL. Changes nothing."""
    if len(query.ids) > state.settings.max_ids:
        raise ParameterError(f"{len(query.ids)} ids; at most {state.settings.max_ids}")
    return SelectionPublic(**queries.selection_stats(state, query.ids))

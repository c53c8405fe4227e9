"""Summary of a set of samples (a box or lasso selection on the map). Reads only."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from samplescope.server import queries
from samplescope.server.deps import State, parse_ids
from samplescope.server.limits import MAX_IDS
from samplescope.server.models import BoxSelection, SelectionPublic, SelectionQuery, ShapeQuery
from samplescope.server.openapi import errors
from samplescope.server.queries import STAT_COLUMNS, MapFilter
from samplescope.server.state import ServerState
from samplescope.store import map_queries, serving

router = APIRouter(prefix="/api", tags=["selection"])


@router.get("/selection", response_model=SelectionPublic, responses=errors(404, 422))
def selection_get(
    state: State,
    ids: Annotated[str, Query(description=f"sample ids, comma separated, at most {MAX_IDS:,}")],
) -> SelectionPublic:
    """Count, accuracy, mean loss, class mix and the highest-loss examples of a selection."""
    wanted = parse_ids(ids, max_ids=MAX_IDS)
    return SelectionPublic(**queries.selection_stats(state, _id_rows(state, wanted)))


@router.post(
    "/selection",
    response_model=SelectionPublic,
    responses=errors(404, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ShapeQuery"}}},
        }
    },
)
async def selection_post(state: State, request: Request) -> Response:
    """The same as GET, for selections too large for a URL (a body of at most 2 MiB,
    ``MAX_BODY_BYTES``), or for a shape: ``{"box": [x0, x1, y0, y1]}`` or ``{"polygon":
    [[x, y], ...]}`` with the map's ``filters``, resolved over every sample inside it (not only
    the drawn ones; a lasso is its bounding box in DuckDB, then an exact test on those).
    Changes nothing.

    The body is parsed, checked and answered in the compute lane (503 when busy), not on the
    event loop that every other request waits for."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise RequestValidationError(
            [{"loc": ("body",), "msg": f"send JSON (Content-Type application/json), not {media!r}"}]
        )
    body = await request.body()
    return Response(await state.compute_lane.run(_selection_json, state, body), media_type=media)


def _selection_json(state: ServerState, body: bytes) -> bytes:
    try:
        query = ShapeQuery.model_validate_json(body).root
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
        for p in problems:
            p["loc"] = ("body", *p.get("loc", ()))
        raise RequestValidationError(problems) from None
    if isinstance(query, SelectionQuery):
        rows = _id_rows(state, query.ids)
    else:
        state.require_map()
        conditions = MapFilter(**query.filters.model_dump()).conditions(state)
        if isinstance(query, BoxSelection):
            x0, x1, y0, y1 = query.box
            rows = serving.frame(
                state.run.db, STAT_COLUMNS, [*map_queries.box_conditions(x0, x1, y0, y1), *conditions]
            )
        else:
            rows = map_queries.in_shape(state.run.db, query.polygon, conditions, STAT_COLUMNS)
    return SelectionPublic(**queries.selection_stats(state, rows)).model_dump_json().encode()


def _id_rows(state: ServerState, ids: list[int]) -> pd.DataFrame:
    """The summary's columns of these samples (unknown ids are a 404)."""
    return state.rows(sorted(set(ids)), STAT_COLUMNS)

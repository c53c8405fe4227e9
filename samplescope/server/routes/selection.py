"""Summary of a set of samples (a box or lasso selection on the map). Reads only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from samplescope.server import queries
from samplescope.server.deps import State, parse_ids
from samplescope.server.limits import MAX_IDS
from samplescope.server.models import SelectionPublic, SelectionQuery, ShapeQuery
from samplescope.server.openapi import errors
from samplescope.server.state import ServerState
from samplescope.store import serving
from samplescope.store.serving import Condition

router = APIRouter(prefix="/api", tags=["selection"])


@router.get("/selection", response_model=SelectionPublic, responses=errors(404, 422))
def selection_get(
    state: State,
    ids: Annotated[str, Query(description=f"sample ids, comma separated, at most {MAX_IDS:,}")],
) -> SelectionPublic:
    """Count, accuracy, mean loss, class mix and the highest-loss examples of a selection."""
    wanted = parse_ids(ids, max_ids=MAX_IDS)
    return SelectionPublic(**queries.selection_stats(state, *_id_where(state, wanted)))


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
    the drawn ones; a lasso is its bounding box and the even-odd rule, both in DuckDB).
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
        clause, params = _id_where(state, query.ids)
    else:
        clause, params = queries.shape_where(state, query)
    return SelectionPublic(**queries.selection_stats(state, clause, params)).model_dump_json().encode()


def _id_where(state: ServerState, ids: list[int]) -> tuple[str, list]:
    """The clause of these samples (unknown ids are a 404)."""
    wanted = state.rows_of(sorted(set(ids)))
    return serving.where_sql([Condition("sample_id", "in", wanted.tolist())], state.run.db.columns())

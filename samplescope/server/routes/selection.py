"""Summary of a set of samples (a box or lasso selection on the map). Reads only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from samplescope.server import queries
from samplescope.server.deps import State, parse_ids
from samplescope.server.limits import MAX_IDS
from samplescope.server.models import SelectionPublic, SelectionQuery
from samplescope.server.openapi import errors
from samplescope.server.state import ServerState

router = APIRouter(prefix="/api", tags=["selection"])


@router.get("/selection", response_model=SelectionPublic, responses=errors(404, 422))
def selection_get(
    state: State,
    ids: Annotated[str, Query(description=f"sample ids, comma separated, at most {MAX_IDS:,}")],
) -> SelectionPublic:
    """Count, accuracy, mean loss, class mix and the highest-loss examples of a selection."""
    wanted = parse_ids(ids, max_ids=MAX_IDS)
    return SelectionPublic(**queries.selection_stats(state, wanted))


@router.post(
    "/selection",
    response_model=SelectionPublic,
    responses=errors(404, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SelectionQuery.model_json_schema()}},
        }
    },
)
async def selection_post(state: State, request: Request) -> Response:
    """The same as GET, for selections too large for a URL (a body of at most 2 MiB,
    ``MAX_BODY_BYTES``). Changes nothing.

    The body (up to 100,000 ids) is parsed and checked on a worker thread, not on the event
    loop that every other request waits for."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise RequestValidationError(
            [{"loc": ("body",), "msg": f"send JSON (Content-Type application/json), not {media!r}"}]
        )
    body = await request.body()
    return Response(await run_in_threadpool(_selection_json, state, body), media_type=media)


def _selection_json(state: ServerState, body: bytes) -> bytes:
    try:
        query = SelectionQuery.model_validate_json(body)
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
        for p in problems:
            p["loc"] = ("body", *p.get("loc", ()))
        raise RequestValidationError(problems) from None
    return SelectionPublic(**queries.selection_stats(state, query.ids)).model_dump_json().encode()

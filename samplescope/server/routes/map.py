"""GET /api/map: every sample's map position and a few columns, as typed arrays."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from samplescope.errors import ParameterError
from samplescope.server.deps import State, parse_names
from samplescope.server.limits import MAX_SERIES, too_many
from samplescope.server.openapi import errors
from samplescope.server.responses import cached

router = APIRouter(prefix="/api", tags=["map"])


@router.get(
    "/map",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "map payload"},
        304: {"description": "not modified: the browser's copy (If-None-Match) is current"},
        **errors(422),
    },
)
def read_map(
    state: State,
    request: Request,
    color: Annotated[str | None, Query(description="column to colour by")] = None,
    columns: Annotated[
        str | None, Query(description=f"more columns, comma separated, at most {MAX_SERIES}")
    ] = None,
) -> Response:
    """The scatter's data; the format is described in ``samplescope.server.encoding``."""
    names = list(dict.fromkeys(parse_names(columns) + ([color] if color else [])))
    if len(names) > MAX_SERIES:
        raise ParameterError(
            too_many("the number of map columns (color and columns)", len(names), MAX_SERIES,
                     "MAX_SERIES", "ask for fewer columns at a time")
        )  # fmt: skip
    extra = state.check_columns(names)
    payload = state.map_payload(color, extra)
    key = f"{state.tag}|{color or ''}|{','.join(sorted(set(extra)))}"
    etag = "map-" + hashlib.sha1(key.encode()).hexdigest()[:20]
    return cached(request, payload, "application/octet-stream", etag, max_age=None)

"""GET /api/map: every sample's map position and a few columns, as typed arrays."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from samplescope.server.deps import State, parse_names
from samplescope.server.responses import cached

router = APIRouter(prefix="/api", tags=["map"])


@router.get(
    "/map",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "map payload"}},
)
def read_map(
    state: State,
    request: Request,
    color: Annotated[str | None, Query(description="column to colour by")] = None,
    columns: Annotated[str | None, Query(description="more columns, comma separated")] = None,
) -> Response:
    """The scatter's data; the format is described in ``samplescope.server.encoding``."""
    extra = state.check_columns(parse_names(columns) + ([color] if color else []))
    payload = state.map_payload(color, extra)
    key = f"{state.tag}|{color or ''}|{','.join(sorted(set(extra)))}"
    etag = "map-" + hashlib.sha1(key.encode()).hexdigest()[:20]
    return cached(request, payload, "application/octet-stream", etag, max_age=None)

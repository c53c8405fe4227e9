"""The map: every sample's position (or, for large runs, an overview), viewports, legend counts."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from samplescope.errors import ParameterError
from samplescope.server.deps import State, parse_names
from samplescope.server.limits import MAX_LEGEND, MAX_SERIES, MAX_VIEWPORT, too_many
from samplescope.server.models import MapCountsPublic
from samplescope.server.openapi import errors
from samplescope.server.queries import MapFilter
from samplescope.server.responses import cached
from samplescope.server.state import ServerState

router = APIRouter(prefix="/api", tags=["map"])
Coordinate = Annotated[float, Query(allow_inf_nan=False, description="map coordinate")]
ColorParam = Annotated[str | None, Query(description="column to colour by")]
ColumnsParam = Annotated[
    str | None, Query(description=f"more columns, comma separated, at most {MAX_SERIES}")
]


def map_filter(
    subset: Annotated[str | None, Query(description="train, validation, ... or all")] = None,
    fcol: Annotated[str | None, Query(description="numeric column bounded by fmin, fmax")] = None,
    fmin: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    fmax: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    ccol: Annotated[str | None, Query(description="column whose legend value cval is shown")] = None,
    cval: Annotated[str | None, Query(description="class name, true/false or value as text")] = None,
) -> MapFilter:
    """The page's map filters, as query parameters."""
    return MapFilter(subset or None, fcol or None, fmin, fmax, ccol or None, cval)


Filters = Annotated[MapFilter, Depends(map_filter)]


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
    state: State, request: Request, color: ColorParam = None, columns: ColumnsParam = None
) -> Response:
    """The scatter's data; the format is described in ``samplescope.server.encoding``.

    Every sample for runs of at most ``map_full_max`` samples (``/api/run`` ``map``); above
    that a density-aware overview of ``map_overview_points`` (header ``sampled``, a
    ``sample_id`` column), with /api/map/viewport for the detail."""
    extra = _series(state, color, columns)
    payload = state.map_payload(color, extra)
    key = f"{state.tag}|{color or ''}|{','.join(sorted(set(extra)))}"
    etag = "map-" + hashlib.sha1(key.encode()).hexdigest()[:20]
    return cached(request, payload, "application/octet-stream", etag, max_age=None)


@router.get(
    "/map/viewport",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "map payload"},
        **errors(422, 503),
    },
)
async def read_viewport(
    state: State,
    filters: Filters,
    x0: Coordinate,
    x1: Coordinate,
    y0: Coordinate,
    y1: Coordinate,
    color: ColorParam = None,
    columns: ColumnsParam = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_VIEWPORT, description=f"most points, 1 to {MAX_VIEWPORT:,}")
    ] = MAX_VIEWPORT,
) -> Response:
    """Every sample inside the rectangle (edges included) that the filters keep, as a map payload
    with ``sample_id``; the header's ``total`` counts them all and ``complete`` says whether all
    are sent (else a seeded random ``limit`` of them). One DuckDB query, in the compute lane."""
    extra = _series(state, color, columns)
    conditions = filters.conditions(state)
    body = await state.compute_lane.run(
        state.viewport_payload, (x0, x1, y0, y1), conditions, color, extra, limit
    )
    return Response(body, media_type="application/octet-stream", headers={"Cache-Control": "no-store"})


@router.get("/map/counts", response_model=MapCountsPublic, responses=errors(422, 503))
async def read_counts(
    state: State,
    filters: Filters,
    column: Annotated[str, Query(description=f"a category or yes/no column of at most {MAX_LEGEND} values")],
) -> Response:
    """Samples per value of ``column`` over every sample the filters keep (the legend of a map
    that draws an overview): one GROUP BY in DuckDB, in the compute lane."""
    state.check_columns([column])
    if column not in state.legend_columns():
        raise ParameterError(
            f"column={column!r} is numeric or has more than {MAX_LEGEND:,} values (MAX_LEGEND); "
            "count by a class, a group or a yes/no column"
        )
    conditions = filters.conditions(state)
    body = await state.compute_lane.run(_counts_json, state, column, conditions)
    return Response(body, media_type="application/json")


def _counts_json(state: ServerState, column: str, conditions: list) -> bytes:
    from samplescope.store import serving

    found = serving.group_counts(state.run.db, column, conditions)
    cats = state.categories(column)
    codes, _ = state.encode_values(column, found["value"])
    counts = [0] * len(cats)
    missing = 0
    for code, n in zip(codes.tolist(), found["n"].tolist(), strict=True):
        if 0 <= code < len(cats):
            counts[code] += int(n)
        else:
            missing += int(n)
    answer = MapCountsPublic(
        column=column, categories=cats, counts=counts, missing=missing, total=sum(counts) + missing
    )
    return answer.model_dump_json().encode()


def _series(state: ServerState, color: str | None, columns: str | None) -> list[str]:
    names = list(dict.fromkeys(parse_names(columns) + ([color] if color else [])))
    if len(names) > MAX_SERIES:
        raise ParameterError(
            too_many("the number of map columns (color and columns)", len(names), MAX_SERIES,
                     "MAX_SERIES", "ask for fewer columns at a time")
        )  # fmt: skip
    return state.check_columns(names)

"""Samples: table pages, one sample's every column, its picture and its heatmaps."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from samplescope.errors import ParameterError
from samplescope.server import encoding, queries
from samplescope.server.deps import SampleIdPath, State, SubsetParam, parse_ids, parse_names
from samplescope.server.limits import MAX_FILTERS, MAX_IDS, MAX_PAGE, MAX_SAMPLE_ID, too_many
from samplescope.server.models import ClassValue, HeatmapPublic, SampleDetail, SamplesPublic
from samplescope.server.openapi import errors
from samplescope.server.reload import ServedRun
from samplescope.server.responses import cached
from samplescope.server.state import HeatmapMethod, ServerState
from samplescope.store import serving
from samplescope.store.serving import Condition

router = APIRouter(prefix="/api/samples", tags=["samples"])

#: Query parameters that are not column filters.
RESERVED = {"subset", "sort", "order", "limit", "offset", "ids", "columns"}
Target = Annotated[
    str | None, Query(description="class index or name; default: the predicted class")
]
Method = Annotated[HeatmapMethod, Query(description="attribution method")]


def png_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"content": {"image/png": {}}, "description": "a PNG picture"},
        304: {"description": "not modified: the browser's copy (If-None-Match) is current"},
        **errors(*codes),
    }


@router.get("", response_model=SamplesPublic, responses=errors(404, 422))
def list_samples(
    state: State,
    request: Request,
    subset: SubsetParam,
    sort: Annotated[str, Query(description="column to sort by")] = "sample_id",
    order: Literal["asc", "desc"] = "asc",
    limit: Annotated[int, Query(ge=0, le=MAX_PAGE, description=f"rows, at most {MAX_PAGE}")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SAMPLE_ID)] = 0,
    ids: Annotated[str | None, Query(description="only these sample ids, comma separated")] = None,
    columns: Annotated[str | None, Query(description="more columns, comma separated, or *")] = None,
    label: Annotated[str | None, Query(description="ground truth class index or name")] = None,
    prediction: Annotated[str | None, Query(description="predicted class index or name")] = None,
    correct: bool | None = None,
) -> SamplesPublic:
    """Rows matching the filters: ``?column=value`` or ``?column__op=value`` (gt, gte, lt,
    lte, not, in, isnull) on any column, e.g. ``?label=5&prediction=6&sort=loss&order=desc``.
    """
    conditions = [Condition("subset", "==", subset)] if subset else []
    if ids is not None:
        wanted = parse_ids(ids, max_ids=MAX_IDS)
        state.rows_of(wanted)  # unknown ids are a 404
        conditions.append(Condition("sample_id", "in", wanted))
    filters = [(k, v) for k, v in request.query_params.multi_items() if k not in RESERVED]
    if len(filters) > MAX_FILTERS:
        raise ParameterError(
            too_many("the number of column filters", len(filters), MAX_FILTERS, "MAX_FILTERS",
                     "filter in fewer steps")
        )  # fmt: skip
    conditions += queries.conditions_of(state, filters)
    if sort:
        state.check_columns([sort])
    extra = parse_names(columns)
    if "*" in extra:
        wanted_columns = list(state.columns)
    else:
        extra = list(dict.fromkeys(state.check_columns(extra)))  # a column named twice is sent once
        wanted_columns = state.row_columns + [c for c in extra if c not in state.row_columns]
    page, count = serving.page(
        state.run.db, wanted_columns, conditions,
        order=sort or None, descending=order == "desc", limit=limit, offset=offset,
        total=None if conditions else state.n,
    )  # fmt: skip
    return SamplesPublic(data=state.records(page), count=count)  # type: ignore[arg-type]


@router.get("/{sample_id}", response_model=SampleDetail, responses=errors(404, 422))
async def read_sample(request: Request, sample_id: SampleIdPath) -> Response:
    """Every column of one sample, its class probabilities and centroid distances.

    Asked for on every click, so answered in one hop to the read lane (server/reads.py): the
    state, the row and the JSON on one thread, not three trips through the shared pool."""
    body = await request.app.state.reads.run(_sample_json, request.app.state.samplescope, sample_id)
    return Response(body, media_type="application/json")


def _sample_json(served: ServedRun, sample_id: int) -> bytes:
    return sample_detail(served.current(), sample_id).model_dump_json().encode()


def sample_detail(state: ServerState, sample_id: int) -> SampleDetail:
    """The answer of ``/api/samples/<id>``: the row, and its per-class columns as lists."""
    record = state.sample_record(sample_id)
    names = state.classes

    def per_class(prefix: str) -> list[ClassValue]:
        return [
            ClassValue(class_index=i, name=n, value=record.get(f"{prefix}{i}"))
            for i, n in enumerate(names)
            if f"{prefix}{i}" in record
        ]

    nearest = record.get("nearest_centroid")
    return SampleDetail(
        sample_id=sample_id,
        subset=record["subset"],
        row=record,
        probabilities=per_class("prob_"),
        centroid_distances=per_class("dist_to_centroid_"),
        nearest_centroid=None if nearest is None else int(nearest),
        image_url=f"/api/samples/{sample_id}/image.png",
    )


@router.get("/{sample_id}/image.png", response_class=Response, responses=png_responses(404, 422))
def read_image(state: State, request: Request, sample_id: SampleIdPath) -> Response:
    """The sample's picture as PNG (cacheable: it never changes within a run)."""
    state.rows_of([sample_id])
    etag = f"{state.tag}-img-{sample_id}"
    if request.headers.get("if-none-match") == f'"{etag}"':
        return cached(request, b"", "image/png", etag, state.settings.image_max_age)
    body = encoding.png_bytes(state.image(sample_id))
    return cached(request, body, "image/png", etag, state.settings.image_max_age)


@router.get(
    "/{sample_id}/heatmap.png", response_class=Response, responses=png_responses(404, 422, 503)
)
async def read_heatmap_png(
    state: State,
    request: Request,
    sample_id: SampleIdPath,
    target: Target = None,
    method: Method = "gradcam",
) -> Response:
    """The heatmap as a coloured overlay with alpha, the size of the sample's picture.

    Computed in the heatmap lane (bounded, with a timeout: 503 when busy or too slow)."""
    cls = _target(state, sample_id, target)
    etag = f"{state.tag}-hm-{sample_id}-{cls}-{method}"
    heatmap = state.cached_heatmap(sample_id, cls, method)
    if heatmap is None:
        body = await state.heatmap_lane.run(_heatmap_png, state, sample_id, cls, method)
    else:
        body = await run_in_threadpool(_png_of, state, heatmap)
    return cached(request, body, "image/png", etag, state.settings.image_max_age)


def _heatmap_png(state: ServerState, sample_id: int, cls: int, method: HeatmapMethod) -> bytes:
    return _png_of(state, state.heatmap(sample_id, cls, method))


def _png_of(state: ServerState, heatmap: np.ndarray) -> bytes:
    if heatmap.ndim != 2:  # a vector's or tokens' attributions: one value each, no picture to lay them on
        raise ParameterError(
            f"heatmap.png draws over an image, and this run's inputs are {state.run.input_kind}s: its attributions "
            "are one value per feature or token; ask heatmap.json for them (the page draws them as bars)."
        )
    return encoding.png_bytes(encoding.heatmap_rgba(heatmap, state.image_shape))


@router.get(
    "/{sample_id}/heatmap.json", response_model=HeatmapPublic, responses=errors(404, 422, 503)
)
async def read_heatmap_json(
    state: State, sample_id: SampleIdPath, target: Target = None, method: Method = "gradcam"
) -> HeatmapPublic:
    """The raw (H, W) heatmap values (computed in the heatmap lane, like the PNG)."""
    cls = _target(state, sample_id, target)
    h = state.cached_heatmap(sample_id, cls, method)
    if h is None:
        h = await state.heatmap_lane.run(state.heatmap, sample_id, cls, method)
    return HeatmapPublic.of(
        sample_id, cls, method, h,
        labels=None if h.ndim == 2 else await run_in_threadpool(state.run.attribution_labels, sample_id),
        padding=None if h.ndim == 2 else await run_in_threadpool(state.run.attribution_padding, sample_id),
    )  # fmt: skip


def _target(state: State, sample_id: int, target: str | None) -> int:
    if "prediction" not in state.class_columns:  # regression, multi-label: an index of the model's outputs
        return _output_target(state, sample_id, target)
    if target in (None, ""):
        return int(state.row(sample_id, ["prediction"])["prediction"])
    state.rows_of([sample_id])
    return state.class_index(target)


def _output_target(state: State, sample_id: int, target: str | None) -> int:
    from samplescope.run import default_target

    n = state.task.output_width(state.classes)
    probs = [f"prob_{k}" for k in range(n) if f"prob_{k}" in state.columns]
    row = state.row(sample_id, probs or ["loss"])
    if target in (None, ""):
        return default_target(state.task, row)
    index = state.find_class(target) if state.classes else None
    if index is None:
        index = int(target) if str(target).isdigit() else -1
    if not 0 <= index < n:
        raise ParameterError(f"target={target!r} is not one of this {state.task.name} run's outputs 0..{n - 1}")
    return index

"""Tags and saved selections: list, create, rename, delete, tag and untag samples, export.

These are the only routes that write. Each write goes through the request guard (a
cross-origin ``Origin`` or ``Sec-Fetch-Site`` is a 403), is bounded (``MAX_IDS`` ids or
one box or lasso per request, ``MAX_ANNOTATIONS`` tags and selections per run) and ends
in ``samplescope.store.annotations``, which serialises writers with a lock and writes
atomically. Tags are data, not code: a run that is not trusted can be tagged too.

Names travel in the body or the query (never the path), so a tag such as
``relabel:7`` or ``needs/review`` needs no escaping.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Query, Response

from samplescope.errors import ConflictError, ParameterError
from samplescope.server import queries
from samplescope.server.deps import State
from samplescope.server.limits import MAX_ANNOTATIONS, MAX_IDS, MAX_SAMPLE_ID, too_many
from samplescope.server.models import (
    NAME_PATTERN,
    RenameRequest,
    SavedSelectionPublic,
    SavedSelectionsPublic,
    SelectionQuery,
    SelectionSave,
    ShapeQuery,
    TagPublic,
    TagRequest,
    TagSamplesPublic,
    TagsPublic,
)
from samplescope.server.openapi import errors
from samplescope.server.state import ServerState

router = APIRouter(prefix="/api", tags=["annotations"])

NameQuery = Annotated[
    str, Query(min_length=1, max_length=100, pattern=NAME_PATTERN, description="the tag or selection name")
]
Format = Annotated[Literal["csv", "parquet", "json"], Query(description="file format of the download")]
Offset = Annotated[int, Query(ge=0, le=MAX_SAMPLE_ID)]
Limit = Annotated[int, Query(ge=0, le=MAX_IDS, description=f"ids, at most {MAX_IDS:,}")]

MEDIA = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet", "json": "application/json"}
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the samples as a file: sample_id, subset, key, label, prediction, loss and the metadata",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        },
    },
    **errors(404, 422, 503),
}


def resolve_ids(state: ServerState, samples: ShapeQuery) -> np.ndarray:
    """The sample ids of a request's ``samples``: its ids (checked), or every sample inside
    its box or lasso that the map's filters keep (not only the drawn ones)."""
    query = samples.root
    if isinstance(query, SelectionQuery):
        return state.rows_of(query.ids)
    clause, params = queries.shape_where(state, query)
    found = state.run.db.fetch_numpy(f'SELECT "sample_id" FROM {{source}} {clause} ORDER BY "sample_id"', params)
    return np.asarray(found["sample_id"], dtype=np.int64)


def _room(have: int, what: str) -> None:
    if have >= MAX_ANNOTATIONS:
        raise ParameterError(
            too_many(f"the number of {what}", have, MAX_ANNOTATIONS, "MAX_ANNOTATIONS",
                     f"delete {what} you no longer need first")
        )  # fmt: skip


# --- tags ------------------------------------------------------------------------------------


@router.get("/tags", response_model=TagsPublic, responses=errors())
def tags_list(state: State) -> TagsPublic:
    """Every tag of the run with its sample count, by name."""
    found = state.run.annotations.tags()
    return TagsPublic(data=[TagPublic(name=n, count=len(v)) for n, v in found.items()], count=len(found))


@router.post("/tags", response_model=TagPublic, responses=errors(404, 422))
def tags_add(state: State, body: TagRequest) -> TagPublic:
    """Tag samples: ``{"name": "mislabeled", "samples": {"ids": [...]}}``, or ``"samples":
    {"box": [...]}`` / ``{"polygon": [...], "filters": {...}}`` for every sample inside a shape
    of the map. Creates the tag when it is new; returns how many samples carry it now."""
    store = state.run.annotations
    ids = resolve_ids(state, body.samples)
    if body.name not in store.tags():
        _room(len(store.tags()), "tags")
    return TagPublic(name=body.name, count=store.tag(ids, body.name))


@router.post("/tags/remove", response_model=TagPublic, responses=errors(404, 422))
def tags_remove(state: State, body: TagRequest) -> TagPublic:
    """Take a tag off some samples (the same ``samples`` as adding); the tag stays, maybe empty."""
    ids = resolve_ids(state, body.samples)
    return TagPublic(name=body.name, count=state.run.annotations.untag(body.name, ids))


@router.post("/tags/rename", response_model=TagPublic, responses=errors(404, 409, 422))
def tags_rename(state: State, body: RenameRequest) -> TagPublic:
    """Rename a tag (409 when the new name is taken)."""
    store = state.run.annotations
    store.rename_tag(body.name, body.new_name)
    return TagPublic(name=body.new_name, count=len(store.tagged(body.new_name)))


@router.delete("/tags", response_model=TagPublic, responses=errors(404, 422))
def tags_delete(state: State, name: NameQuery) -> TagPublic:
    """Delete a tag from every sample; returns how many carried it."""
    store = state.run.annotations
    count = len(store.tagged(name))
    store.untag(name)
    return TagPublic(name=name, count=count)


@router.get("/tags/samples", response_model=TagSamplesPublic, responses=errors(404, 422))
def tags_samples(state: State, name: NameQuery, offset: Offset = 0, limit: Limit = MAX_IDS) -> TagSamplesPublic:
    """The sample ids of a tag, sorted, ``limit`` from ``offset``."""
    ids = state.run.annotations.tagged(name)
    return TagSamplesPublic(name=name, count=len(ids), ids=ids[offset : offset + limit].tolist())


@router.get("/tags/export", response_class=Response, responses=EXPORT_RESPONSES)
async def tags_export(state: State, name: NameQuery, format: Format = "csv") -> Response:
    """Download the samples of a tag as CSV, Parquet or JSON (a tag ``relabel:X`` adds a
    ``new_label`` column X, ready for ``samplescope train --relabel FILE``)."""
    state.run.annotations.tagged(name)  # 404 before the lane
    return await _export(state, format, f"tag-{name}", tag=name)


# --- saved selections --------------------------------------------------------------------------


def _public(sel: Any) -> SavedSelectionPublic:
    return SavedSelectionPublic(name=sel.name, note=sel.note, created=sel.created, count=len(sel))


@router.get("/selections", response_model=SavedSelectionsPublic, responses=errors())
def selections_list(state: State) -> SavedSelectionsPublic:
    """Every saved selection: name, note, when it was saved and its size."""
    found = [_public(s) for s in state.run.annotations.selections()]
    return SavedSelectionsPublic(data=found, count=len(found))


@router.post("/selections", response_model=SavedSelectionPublic, responses=errors(404, 409, 422))
def selections_save(state: State, body: SelectionSave) -> SavedSelectionPublic:
    """Save a named selection with a note (409 when the name is taken, unless ``overwrite``).

    ``samples`` is ids, or a box or lasso with the map's filters, resolved here over every sample
    inside it (any number); ``append`` adds ids to a saved selection, for lists of more than
    ``MAX_IDS`` ids."""
    store = state.run.annotations
    names = [s.name for s in store.selections()]
    if body.name in names and not (body.overwrite or body.append):
        raise ConflictError(f"A selection named {body.name!r} exists; pick another name or overwrite it.")
    if body.name not in names and not body.append:
        _room(len(names), "saved selections")
    ids = resolve_ids(state, body.samples)
    saved = store.save_selection(body.name, ids, note=body.note, overwrite=body.overwrite, append=body.append)
    return _public(saved)


@router.post("/selections/rename", response_model=SavedSelectionPublic, responses=errors(404, 409, 422))
def selections_rename(state: State, body: RenameRequest) -> SavedSelectionPublic:
    """Rename a saved selection (409 when the new name is taken)."""
    store = state.run.annotations
    store.rename_selection(body.name, body.new_name)
    return _public(store.selection(body.new_name))


@router.delete("/selections", response_model=SavedSelectionPublic, responses=errors(404, 422))
def selections_delete(state: State, name: NameQuery) -> SavedSelectionPublic:
    """Delete a saved selection; returns what it was."""
    store = state.run.annotations
    gone = _public(store.selection(name))
    store.delete_selection(name)
    return gone


@router.get("/selections/samples", response_model=TagSamplesPublic, responses=errors(404, 422))
def selections_samples(
    state: State, name: NameQuery, offset: Offset = 0, limit: Limit = MAX_IDS
) -> TagSamplesPublic:
    """The sample ids of a saved selection, sorted, ``limit`` from ``offset``."""
    ids = state.run.annotations.selection(name).ids
    return TagSamplesPublic(name=name, count=len(ids), ids=ids[offset : offset + limit].tolist())


@router.get("/selections/export", response_class=Response, responses=EXPORT_RESPONSES)
async def selections_export(state: State, name: NameQuery, format: Format = "csv") -> Response:
    """Download the samples of a saved selection as CSV, Parquet or JSON."""
    state.run.annotations.selection(name)
    return await _export(state, format, f"selection-{name}", selection=name)


# --- export ------------------------------------------------------------------------------------


async def _export(state: ServerState, fmt: str, stem: str, **which: str) -> Response:
    """``Run.export`` into a temporary file, in the compute lane; the file as an attachment."""
    body = await state.compute_lane.run(_export_bytes, state, fmt, which)
    name = f"{state.run.name}-{stem}.{fmt}"
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    return Response(body, media_type=MEDIA[fmt], headers={"Content-Disposition": disposition})


def _export_bytes(state: ServerState, fmt: str, which: dict[str, str]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="samplescope-export-") as tmp:
        path = state.run.export(Path(tmp) / f"export.{fmt}", format=fmt, **which)  # type: ignore[arg-type]
        return path.read_bytes()

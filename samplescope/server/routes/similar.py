"""Nearest neighbours in the model's latent space."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from samplescope.errors import ParameterError
from samplescope.server.deps import SampleIdPath, State, SubsetParam, parse_ids
from samplescope.server.limits import MAX_K, MAX_SET_IDS
from samplescope.server.models import SimilarPublic
from samplescope.server.openapi import errors
from samplescope.server.state import ServerState

router = APIRouter(prefix="/api", tags=["similar"])
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"how many neighbours, 1 to {MAX_K}")]


@router.get(
    "/samples/{sample_id}/similar", response_model=SimilarPublic, responses=errors(404, 422)
)
def similar_to_sample(
    state: State, sample_id: SampleIdPath, subset: SubsetParam, k: K = 12
) -> SimilarPublic:
    """The ``k`` samples most similar to one sample, most similar first."""
    rows = state.similar([sample_id], k=k, subset=subset)
    return SimilarPublic(query=[sample_id], data=state.records(rows), count=len(rows))


@router.get("/similar", response_model=SimilarPublic, responses=errors(404, 422, 503))
async def similar_to_set(
    state: State,
    subset: SubsetParam,
    ids: Annotated[str, Query(description=f"sample ids, comma separated, at most {MAX_SET_IDS:,}")],
    k: K = 12,
) -> Response:
    """The ``k`` samples most similar to a set of samples (in the compute lane: 503 when busy)."""
    wanted = parse_ids(ids, max_ids=MAX_SET_IDS, limit="MAX_SET_IDS")
    if not wanted:
        raise ParameterError("ids must name at least one sample id, e.g. ids=1,2,3")
    body = await state.compute_lane.run(_similar_json, state, wanted, k, subset)
    return Response(body, media_type="application/json")


def _similar_json(state: ServerState, ids: list[int], k: int, subset: str | None) -> bytes:
    """The whole answer, JSON included, on the lane's thread."""
    rows = state.similar(ids, k=k, subset=subset)
    answer = SimilarPublic(query=ids, data=state.records(rows), count=len(rows))
    return answer.model_dump_json().encode()

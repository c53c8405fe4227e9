"""Nearest neighbours in the model's latent space."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from samplescope.errors import ParameterError
from samplescope.server.deps import State, SubsetParam, parse_ids
from samplescope.server.models import SimilarPublic

router = APIRouter(prefix="/api", tags=["similar"])
K = Annotated[int, Query(ge=1, le=200, description="how many neighbours")]


@router.get("/samples/{sample_id}/similar", response_model=SimilarPublic)
def similar_to_sample(
    state: State, sample_id: int, subset: SubsetParam, k: K = 12
) -> SimilarPublic:
    """The ``k`` samples most similar to one sample, most similar first."""
    rows = state.similar([sample_id], k=k, subset=subset)
    return SimilarPublic(query=[sample_id], data=state.records(rows), count=len(rows))


@router.get("/similar", response_model=SimilarPublic)
def similar_to_set(
    state: State,
    subset: SubsetParam,
    ids: Annotated[str, Query(description="sample ids, comma separated")],
    k: K = 12,
) -> SimilarPublic:
    """The ``k`` samples most similar to a set of samples."""
    wanted = parse_ids(ids, max_ids=state.settings.max_ids)
    if not wanted:
        raise ParameterError("ids must name at least one sample id, e.g. ids=1,2,3")
    rows = state.similar(wanted, k=k, subset=subset)
    return SimilarPublic(query=wanted, data=state.records(rows), count=len(rows))

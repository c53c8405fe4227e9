"""GET /api/insights: what the analysis found, most severe first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from samplescope.server.deps import State
from samplescope.server.models import TablePublic
from samplescope.server.openapi import errors
from samplescope.server.state import jsonable

router = APIRouter(prefix="/api", tags=["insights"])
SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "warning": 2, "low": 1, "info": 0}


@router.get("/insights", response_model=TablePublic, responses=errors())
def read_insights(state: State) -> TablePublic:
    """Insight cards; ``id`` is the insight's position in the run's list (stable in URLs)."""
    found = state.call(state.run.insights)
    cards = [_card(i, jsonable(insight.to_dict())) for i, insight in enumerate(found)]
    cards.sort(key=lambda c: (-_rank(c.get("severity")), -c["count"], c["id"]))
    return TablePublic(data=cards, count=len(cards))


def _card(index: int, data: dict[str, Any]) -> dict[str, Any]:
    """The insight plus ``id`` and ``count``: how many samples it concerns (its
    ``sample_ids`` list may be capped, most relevant first)."""
    ids = [int(i) for i in data.get("sample_ids", [])]
    count = (data.get("details") or {}).get("n_samples", len(ids))
    return {**data, "id": index, "sample_ids": ids, "count": max(int(count), len(ids))}


def _rank(severity: Any) -> float:
    if isinstance(severity, int | float):
        return float(severity)
    return SEVERITY_RANK.get(str(severity).lower(), 0)

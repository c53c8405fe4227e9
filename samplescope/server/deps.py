"""Dependencies the route handlers declare with ``Annotated[..., Depends()]``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from samplescope.errors import ParameterError
from samplescope.ids import parse_id
from samplescope.server.limits import MAX_SAMPLE_ID
from samplescope.server.state import ServerState

#: comma-separated sample ids as the schema states them (ids of up to 18 digits; the
#: server takes any up to 2**63 - 1)
IDS_PATTERN = r"^\s*(?:[0-9]{1,18}\s*(?:,\s*[0-9]{1,18}\s*)*)?$"
NONEMPTY_IDS_PATTERN = r"^\s*[0-9]{1,18}\s*(?:,\s*[0-9]{1,18}\s*)*$"


def get_state(request: Request) -> ServerState:
    """The state of the run as it is now (a re-analysed run is reopened first)."""
    return request.app.state.samplescope.current()


def get_subset(
    state: Annotated[ServerState, Depends(get_state)],
    subset: Annotated[str | None, Query(description="train, validation, ... or all")] = None,
) -> str | None:
    return state.check_subset(subset)


State = Annotated[ServerState, Depends(get_state)]
SubsetParam = Annotated[str | None, Depends(get_subset)]
#: a sample id in a path: 0 to 2**63 - 1 (larger ones are a 422, not an overflow)
SampleIdPath = Annotated[int, Path(ge=0, le=MAX_SAMPLE_ID, description="sample id: 0 to 2**63 - 1")]


def parse_ids(
    text: str | None, *, max_ids: int, name: str = "ids", limit: str = "MAX_IDS"
) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]`` (``IDS_PATTERN``); anything else is a 422 naming the bad part."""
    if text is None or not text.strip():
        return []
    out: list[int] = []
    for part in text.split(","):
        value = parse_id(part)
        if value is None:
            raise ParameterError(
                f"{name} must be comma-separated sample ids (integers 0 to {MAX_SAMPLE_ID}); "
                f"{part.strip()[:40]!r} is not one"
            )
        out.append(value)
        if len(out) > max_ids:
            raise ParameterError(
                f"{name} holds more than {max_ids:,} ids; at most {max_ids:,} are allowed per "
                f"request (limit {limit}); ask in parts"
            )
    return out


def parse_names(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]

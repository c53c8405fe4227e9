"""Dependencies the route handlers declare with ``Annotated[..., Depends()]``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from samplescope.errors import ParameterError
from samplescope.server.state import ServerState


def get_state(request: Request) -> ServerState:
    return request.app.state.samplescope


def get_subset(
    state: Annotated[ServerState, Depends(get_state)],
    subset: Annotated[str | None, Query(description="train, validation, ... or all")] = None,
) -> str | None:
    return state.check_subset(subset)


State = Annotated[ServerState, Depends(get_state)]
SubsetParam = Annotated[str | None, Depends(get_subset)]


def parse_ids(text: str | None, *, max_ids: int, name: str = "ids") -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``; anything else is a 422 naming the bad part."""
    if not text:
        return []
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise ParameterError(
                f"{name} must be comma-separated integer sample ids; {part!r} is not one"
            ) from None
    if len(out) > max_ids:
        raise ParameterError(f"{name} holds {len(out)} ids; at most {max_ids} are accepted")
    return out


def parse_names(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]

"""Responses with validators, so browsers keep images and payloads they already have."""

from __future__ import annotations

from fastapi import Request, Response


def cached(
    request: Request, body: bytes, media_type: str, etag: str, max_age: int | None
) -> Response:
    """``body`` with an ETag; 304 when the browser already holds this version.

    ``max_age=None`` makes the browser revalidate every time (``no-cache``).
    """
    tag = f'"{etag}"'
    control = "no-cache" if max_age is None else f"public, max-age={max_age}, immutable"
    headers = {"ETag": tag, "Cache-Control": control}
    match = request.headers.get("if-none-match", "")
    if tag in [t.strip() for t in match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)

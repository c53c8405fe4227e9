"""The request guard: every request passes here before it reaches a route.

- ``Host`` must name this server: a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``,
  any port) or the ``--host`` it was started with; anything else is a 403. This stops
  DNS rebinding: a page on ``evil.example`` that re-points its name at 127.0.0.1 still
  sends ``Host: evil.example``.
- Requests that write (every method but GET, HEAD and OPTIONS) refuse a cross-origin
  ``Origin`` or ``Sec-Fetch-Site`` with a 403, so no other site's page can post to us.
- A request body is read here, up to ``MAX_BODY_BYTES``; a larger one is a 422.
- ``OPTIONS`` answers 204 with ``Allow`` listing every method the path takes, and the
  405 of a wrong method lists them too (Starlette's names only the first route's).

It is plain ASGI (no BaseHTTPMiddleware), so it adds no thread hop or body copy to reads.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from samplescope.errors import ParameterError, RequestRefusedError, SamplescopeError
from samplescope.server.limits import MAX_BODY_BYTES

log = logging.getLogger(__name__)

#: methods that only read
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_HOST_RE = re.compile(
    r"^(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[^:\[\]]+))(?::(?P<port>[0-9]{1,5}))?$"
)


def host_name(header: str | None) -> str | None:
    """``"Localhost:8765"`` -> ``"localhost"``, ``"[::1]:9"`` -> ``"::1"``; None when malformed."""
    m = _HOST_RE.match((header or "").strip().lower())
    if not m:
        return None
    name = m.group("v6") or m.group("name")
    return name.removesuffix(".")


def allowed_host_names(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names a ``Host`` header may carry for a server bound to ``host``.

    Loopback names always; ``host`` itself; the ``extra`` names. A server bound to every
    interface (``0.0.0.0``, ``::``) also takes this machine's own names (an IP literal
    is accepted there too, see :func:`host_allowed`: rebinding needs a domain name).
    """
    names = set(LOOPBACK_NAMES)
    names.update(n for n in (host_name(h) for h in [host, *extra]) if n)
    if host.strip("[]") in WILDCARDS:
        for name in (socket.gethostname(), socket.getfqdn()):
            if name:
                names.add(name.lower())
    return frozenset(names)


def host_allowed(name: str | None, allowed: frozenset[str], *, wildcard: bool) -> bool:
    if not name:
        return False
    if name in allowed:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or wildcard


class RequestGuard:
    """ASGI middleware: Host and Origin checks, body size, OPTIONS and Allow (module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str,
        allowed_hosts: Iterable[str] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
        routes: Iterable[object] = (),
    ) -> None:
        self.app = app
        self.allowed = allowed_host_names(host, allowed_hosts)
        self.wildcard = host.strip("[]") in WILDCARDS
        self.max_body_bytes = max_body_bytes
        self.routes = list(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            self._check_host(headers)
            if scope["type"] == "http":
                method = scope["method"]
                if method not in SAFE_METHODS:
                    self._check_origin(headers)
                if method == "OPTIONS":
                    await self._options(scope, receive, send)
                    return
                if method not in ("GET", "HEAD"):
                    receive = await self._read_body(headers, receive)
        except SamplescopeError as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    # --- the checks -------------------------------------------------------------------------

    def _check_host(self, headers: Headers) -> None:
        header = headers.get("host")
        if not host_allowed(host_name(header), self.allowed, wildcard=self.wildcard):
            raise RequestRefusedError(
                f"Host {header!r} is not this server's name; it answers only to "
                f"{', '.join(sorted(self.allowed))} (any port). Open it by one of those names, "
                "or start it with `samplescope serve --host NAME` for another"
            )

    def _check_origin(self, headers: Headers) -> None:
        origin = headers.get("origin")
        site = headers.get("sec-fetch-site", "").lower()
        if origin is None and site in ("", "same-origin", "none"):
            return
        host = (headers.get("host") or "").strip().lower()
        parts = urlsplit(origin or "")
        if origin is not None and (parts.scheme not in ("http", "https") or parts.netloc != host):
            raise RequestRefusedError(
                f"Origin {origin!r} is another site than this server (Host {host!r}); requests "
                "that write are taken only from the server's own page"
            )
        if site not in ("", "same-origin", "none"):
            raise RequestRefusedError(
                f"Sec-Fetch-Site {site!r}: requests that write are taken only from the "
                "server's own page"
            )

    async def _read_body(self, headers: Headers, receive: Receive) -> Receive:
        """The whole body, at most ``max_body_bytes``; replayed to the app as one message."""
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large(int(declared))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return _replay([message], receive)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large(size, partial=True)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        return _replay([{"type": "http.request", "body": body, "more_body": False}], receive)

    def _too_large(self, size: int, partial: bool = False) -> ParameterError:
        got = f"over {size:,}" if partial else f"{size:,}"
        return ParameterError(
            f"the request body is {got} bytes; at most {self.max_body_bytes:,} are accepted "
            "(limit max_body_bytes); send fewer ids per request"
        )

    # --- OPTIONS and Allow ------------------------------------------------------------------

    def allowed_methods(self, path: str) -> set[str]:
        """Every method some route takes at ``path`` (empty when no route has the path)."""
        return allowed_methods(self.routes, path)

    async def _options(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods = self.allowed_methods(scope["path"])
        if not methods:
            from samplescope.errors import NotFoundError

            exc = NotFoundError(f"no route at {scope['path']}; GET /openapi.json lists them")
            await error_response(exc, name="NotFound")(scope, receive, send)
            return
        await Response(status_code=204, headers={"Allow": allow_header(methods)})(
            scope, receive, send
        )


def allowed_methods(routes: Iterable[object], path: str) -> set[str]:
    """The methods some route answers at ``path``, OPTIONS included (empty: no such path).

    Asks each route whether it matches (Starlette's ``matches``), so routes of included
    routers count too; a mount (the static files) takes GET and HEAD.
    """
    methods: set[str] = set()
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
        for route in routes:
            match, _ = route.matches(scope)  # type: ignore[attr-defined]
            if match is Match.FULL:
                if not isinstance(route, Mount) or method in ("GET", "HEAD"):
                    methods.add(method)
                break
    return methods | {"OPTIONS"} if methods else methods


def allow_header(methods: Iterable[str]) -> str:
    return ", ".join(sorted(methods))


def error_response(exc: SamplescopeError, name: str | None = None) -> JSONResponse:
    """The error body every refusal carries: ``{"error": class name, "detail": message}``."""
    return JSONResponse(
        {"error": name or type(exc).__name__, "detail": str(exc)}, status_code=exc.status_code
    )


def _replay(messages: list[Message], then: Receive) -> Receive:
    """``messages`` first, then the client's own (which waits for its disconnect)."""
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        return await then()

    return receive

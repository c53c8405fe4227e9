"""The HTTP app factory: one run, its JSON API under /api and the page at /."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from samplescope.errors import SamplescopeError
from samplescope.server import openapi
from samplescope.server.guard import RequestGuard, allow_header, allowed_methods
from samplescope.server.reads import ReadLane
from samplescope.server.reload import ServedRun
from samplescope.server.routes import (
    annotations,
    insights,
    map,
    metrics,
    run,
    samples,
    selection,
    similar,
)
from samplescope.server.routes import compare as compare_routes
from samplescope.server.settings import Settings
from samplescope.server.state import check_servable, load_run

if TYPE_CHECKING:
    from samplescope.run import Run

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def create_app(run_or_path: Run | str | Path, settings: Settings | None = None) -> FastAPI:
    """An app serving one analysed run; give a run folder or an open ``Run``."""
    if isinstance(run_or_path, str | Path):
        settings = settings or Settings(run_path=Path(run_or_path))
        the_run = load_run(
            run_or_path, trust=settings.trust, integration=settings.integration, device=settings.device
        )
    else:
        the_run = run_or_path
        check_servable(the_run)
    settings = settings or Settings(run_path=Path(the_run.path))
    served = ServedRun(the_run, settings)
    if settings.compare is not None:  # `serve RUN_B --compare RUN_A`: refused before listening when not comparable
        compare_routes.check_comparable(settings.compare, the_run)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # fewer threads of the shared pool running Python at once (8, not anyio's 40), and a
        # shorter wait for the interpreter lock (1 ms, not 5): on two cores the cheap routes
        # waited on both (bench/serve_speed.py --phases); set back when the app stops
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.pool_threads
        switch = sys.getswitchinterval()
        sys.setswitchinterval(settings.switch_interval)
        if settings.prewarm:
            threading.Thread(
                target=served.state.prewarm,
                args=(settings.prewarm_delay,),
                name="samplescope-prewarm",
                daemon=True,
            ).start()
        try:
            yield
        finally:
            sys.setswitchinterval(switch)
            reads.close()

    reads = ReadLane(settings.read_threads)
    app = FastAPI(
        title="samplescope",
        summary=f"Samples of run {the_run.name!r}: map, errors, heatmaps, neighbours, insights.",
        version="1",
        lifespan=lifespan,
    )
    app.state.samplescope = served
    app.state.reads = reads  # the read lane of /api/samples/<id> (server/reads.py)
    app.add_exception_handler(SamplescopeError, _samplescope_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
    for module in (run, map, samples, similar, selection, metrics, insights, annotations, compare_routes):
        app.include_router(module.router)
    app.add_api_route("/", _index, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(
        RequestGuard, host=settings.host, allowed_hosts=settings.allowed_hosts, routes=app.routes
    )
    openapi.install(app, served)
    return app


def _index() -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def _samplescope_error(request: Request, exc: SamplescopeError) -> JSONResponse:
    """Every SamplescopeError by its own ``status_code`` (TrustError 403, BusyError 503, ...)."""
    headers = {"Retry-After": "2"} if exc.status_code == 503 else None
    return JSONResponse(
        {"error": type(exc).__name__, "detail": str(exc)},
        status_code=exc.status_code,
        headers=headers,
    )


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, answered with the same one-line error body."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {
            "error": "InternalError",
            "detail": f"{type(exc).__name__}: {str(exc)[:300]} (a samplescope bug; the server "
            "log has the traceback)",
        },
        status_code=500,
    )


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's list of problems as one line: ``query.limit=5000: Input should be <= 1000``."""
    problems = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e.get("loc", ()))
        value = e.get("input")
        shown = "" if value is None or isinstance(value, dict | list) else f"={str(value)[:40]!r}"
        problems.append(f"{where}{shown}: {e.get('msg', '')}")
    return JSONResponse(
        {"error": "ValidationError", "detail": "; ".join(problems)[:2000]}, status_code=422
    )


def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    name = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    if exc.status_code == 405:  # every method of the path, not only the first route's
        methods = allowed_methods(request.app.routes, request.url.path)
        headers["Allow"] = allow_header(methods)
        detail = f"{request.method} is not allowed at {request.url.path}; use {headers['Allow']}"
    elif exc.status_code == 404:
        detail = f"nothing at {request.url.path}; GET /openapi.json lists the API's routes"
    return JSONResponse(
        {"error": name, "detail": detail}, status_code=exc.status_code, headers=headers
    )

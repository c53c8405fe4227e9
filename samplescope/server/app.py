"""The HTTP app factory: one run, its JSON API under /api and the page at /."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from samplescope.errors import SamplescopeError
from samplescope.server.routes import insights, map, metrics, run, samples, selection, similar
from samplescope.server.settings import Settings
from samplescope.server.state import ServerState, check_servable, load_run

if TYPE_CHECKING:
    from samplescope.run import Run

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def create_app(run_or_path: Run | str | Path, settings: Settings | None = None) -> FastAPI:
    """An app serving one analysed run; give a run folder or an open ``Run``."""
    if isinstance(run_or_path, str | Path):
        settings = settings or Settings(run_path=Path(run_or_path))
        the_run = load_run(run_or_path)
    else:
        the_run = run_or_path
        check_servable(the_run)
    settings = settings or Settings(run_path=Path(the_run.path))
    state = ServerState(the_run, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.prewarm:
            threading.Thread(
                target=state.prewarm,
                args=(settings.prewarm_delay,),
                name="samplescope-prewarm",
                daemon=True,
            ).start()
        yield

    app = FastAPI(
        title="samplescope",
        summary=f"Samples of run {the_run.name!r}: map, errors, heatmaps, neighbours, insights.",
        version="1",
        lifespan=lifespan,
    )
    app.state.samplescope = state
    app.add_exception_handler(SamplescopeError, _samplescope_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    for module in (run, map, samples, similar, selection, metrics, insights):
        app.include_router(module.router)
    app.add_api_route("/", _index, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _index() -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def _samplescope_error(request: Request, exc: SamplescopeError) -> JSONResponse:
    return JSONResponse(
        {"error": type(exc).__name__, "detail": str(exc)}, status_code=exc.status_code
    )


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
    ]
    return JSONResponse(
        {"error": "ValidationError", "detail": "; ".join(problems)}, status_code=422
    )


def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    name = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
    return JSONResponse(
        {"error": name, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )

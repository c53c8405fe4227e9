"""Where `analyze`'s per-sample pass runs: in this process (``embedded``, the default) or on Ray.

The per-sample pass is encoding every input, inference with the latent hook, the
pixel sketches (raw, and aligned for images) and (asked) Grad-CAM. An engine runs that
pass and hands back the same five things the embedded pass makes (logits, latent, pixel
sketch, aligned sketch or None, Grad-CAM or None), in sample-id order. After it, the
row stages (every row's kNN queries against an index fitted on the driver, placing every
row on a map fitted on the driver: :mod:`samplescope.engines.stages`) run on the engine
too when it has a session for them (Ray, from ``RayEngine.stage_min_rows`` rows); the
prediction columns, the fits of the index and the map, clustering, the insight finders'
reductions and the atomic write run on the driver, the same code for both.

    analyze_run(path)                                    # embedded
    analyze_run(path, engine="ray")                      # a local Ray instance for the job
    analyze_run(path, engine=RayEngine(address="auto", workers=8, gpus_per_worker=1))
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, Literal

from samplescope.errors import ParameterError

ENGINES = ("embedded", "ray")
EngineName = Literal["embedded", "ray"]


def get_engine(engine: str | Any | None) -> Any | None:
    """The engine object for ``engine``, or None for the embedded (in-process) pass.

    ``engine`` is ``"embedded"``, ``"ray"`` (a :class:`RayEngine` with its defaults) or an
    engine object such as ``RayEngine(address="auto")``. Fails before any work when Ray
    is asked for and not installed, or its cluster address does not answer.
    """
    if engine is None or engine == "embedded":
        return None
    if engine == "ray":
        from samplescope.engines.ray_engine import RayEngine

        engine = RayEngine()
    if callable(getattr(engine, "encode_pass", None)):
        preflight = getattr(engine, "preflight", None)
        if callable(preflight):
            preflight()  # e.g. an unreachable cluster address, in seconds
        return engine
    raise ParameterError(
        f"engine={engine!r} is not an engine; pass one of {', '.join(ENGINES)} or a RayEngine(...)."
    )


def with_engine_stages(analyze: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``analyze_run(path, *, engine=..., ...)`` so that the engine's session spans the whole
    analysis (``engine.stages()``, when it has one): the row stages after the pass (kNN graphs,
    map placement; :mod:`samplescope.engines.stages`) then run on it too."""

    @functools.wraps(analyze)
    def wrapper(path: Any, **kwargs: Any) -> Any:
        engine = get_engine(kwargs.get("engine", "embedded"))
        stages = getattr(engine, "stages", None)
        with stages() if callable(stages) else contextlib.nullcontext():
            return analyze(path, **{**kwargs, "engine": "embedded" if engine is None else engine})

    return wrapper


def __getattr__(name: str) -> Any:  # RayEngine without importing Ray's code until it is used
    if name == "RayEngine":
        from samplescope.engines.ray_engine import RayEngine

        return RayEngine
    raise AttributeError(name)


__all__ = ["ENGINES", "RayEngine", "get_engine", "with_engine_stages"]

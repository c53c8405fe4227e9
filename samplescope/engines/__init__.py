"""Where `analyze`'s per-sample pass runs: in this process (``embedded``, the default) or on Ray.

The per-sample pass is encoding every input, inference with the latent hook, the
pixel sketch and (asked) Grad-CAM. An engine runs that pass and hands back the same
four things the embedded pass makes (logits, latent, pixel sketch, Grad-CAM), in
sample-id order; everything after it (prediction columns, neighbours, the map,
clustering, insights, the atomic write) runs on the driver, the same code for both.

    analyze_run(path)                                    # embedded
    analyze_run(path, engine="ray")                      # a local Ray instance for the job
    analyze_run(path, engine=RayEngine(address="auto", workers=8, gpus_per_worker=1))
"""

from __future__ import annotations

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


def __getattr__(name: str) -> Any:  # RayEngine without importing Ray's code until it is used
    if name == "RayEngine":
        from samplescope.engines.ray_engine import RayEngine

        return RayEngine
    raise AttributeError(name)


__all__ = ["ENGINES", "RayEngine", "get_engine"]

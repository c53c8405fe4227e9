"""The web page and JSON API over one analysed run.

Starting the server is cheap: torch, captum and faiss load only when a heatmap
or similar samples are first asked for (or in a background thread after
startup). Importing this package is cheaper still: the web app (FastAPI) loads
when ``create_app``, ``serve`` or ``Settings`` is first used, so a compute worker,
which imports only the modules it runs (``server.heavy``, ``server.state``), never
loads it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from samplescope.server.app import create_app
    from samplescope.server.serve import serve
    from samplescope.server.settings import Settings

__all__ = ["Settings", "create_app", "serve"]

_HOMES = {"create_app": "samplescope.server.app", "serve": "samplescope.server.serve",
          "Settings": "samplescope.server.settings"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value

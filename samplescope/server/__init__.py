"""The web page and JSON API over one analysed run.

Starting the server is cheap: torch, captum and faiss load only when a heatmap
or similar samples are first asked for (or in a background thread after
startup).
"""

from __future__ import annotations

from samplescope.server.app import create_app
from samplescope.server.serve import serve
from samplescope.server.settings import Settings

__all__ = ["Settings", "create_app", "serve"]

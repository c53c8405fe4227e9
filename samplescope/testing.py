"""Helpers for tests (samplescope's own, and yours): a small, fully analysed run.

``make_tiny_run`` trains the default CNN briefly on scikit-learn's bundled 8x8
digits (no download) and analyses it, so tests of the server, the report or a
user's own code have a real run to read in seconds.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_CACHE: dict[tuple[int, int, str], Path] = {}


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (to start a server on, or to fail against)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tiny_run(
    path: str | Path, epochs: int = 8, seed: int = 0, heatmaps: str = "none", projection: str = "pca"
) -> Path:
    """Train and analyse a small digits run at ``path`` and return it.

    Built once per process and copied after that (the copy is cheap). The map uses
    PCA by default because it needs no JIT warm-up; pass ``projection="umap"`` for
    the default analysis.
    """
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.pipeline.train import train_run

    path = Path(path)
    key = (epochs, seed, projection)
    cached = _CACHE.get(key)
    if cached is not None and cached.exists() and heatmaps == "none":
        shutil.copytree(cached, path)
        return path
    train_run("digits", path, epochs=epochs, seed=seed, batch_size=64, progress=False)
    analyze_run(path, seed=seed, heatmaps=heatmaps, projection=projection, progress=False)
    if heatmaps == "none":
        keep = path.with_name(f".{path.name}.tiny-cache")
        shutil.copytree(path, keep)
        _CACHE[key] = keep
    return path


#: ``serving(..., settings=...)``: the app with settings the command line has no option for
_SERVE_WITH_SETTINGS = """
import json, sys
from pathlib import Path
import uvicorn
from samplescope.server import Settings, create_app
given = json.loads(sys.argv[3])
given.update({k: Path(given[k]) for k in ("run_path", "compare") if given.get(k) is not None})
settings = Settings(port=int(sys.argv[2]), **given)
uvicorn.run(create_app(sys.argv[1], settings), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


class Served:
    """A server started by :func:`served`: its base URL and its process (for its pid or RSS)."""

    def __init__(self, base: str, process: subprocess.Popen) -> None:
        self.base = base
        self.process = process


@contextmanager
def served(
    run_path: str | Path,
    *args: str,
    log: Path | None = None,
    timeout: float = 60.0,
    settings: dict[str, Any] | None = None,
) -> Iterator[Served]:
    """Run ``samplescope serve RUN_PATH *args`` in a subprocess on a free port; yield it once
    ``/api/run`` answers, as a :class:`Served` (base URL and process).

    With ``settings`` (``Settings`` fields as JSON values, e.g. ``{"map_full_max": 500}``) the
    subprocess serves ``create_app(RUN_PATH, Settings(**settings))`` instead, and ``args`` must
    be empty. Fails with the server's output if it exits or does not answer within ``timeout``
    seconds; stops the server on exit. ``log`` keeps the server's output in that file (without
    it the output goes to a temporary file, removed on exit).
    """
    import httpx

    if settings is not None and args:
        raise ValueError("served(): pass command-line args or settings, not both")
    port = free_port()
    log_path = Path(log) if log is not None else Path(tempfile.mkstemp(prefix="samplescope-serve-", suffix=".log")[1])
    command = (
        [sys.executable, "-m", "samplescope", "serve", str(run_path), "--port", str(port), *args]
        if settings is None
        else [sys.executable, "-c", _SERVE_WITH_SETTINGS, str(run_path), str(port), json.dumps(settings, default=str)]
    )
    with log_path.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {log_path.read_text()}")
            try:
                if httpx.get(base + "/api/run", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer within {timeout:.0f} s: {log_path.read_text()}")
            time.sleep(0.05)
        yield Served(base, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is None:
            log_path.unlink(missing_ok=True)


@contextmanager
def serving(
    run_path: str | Path,
    *args: str,
    log: Path | None = None,
    timeout: float = 60.0,
    settings: dict[str, Any] | None = None,
) -> Iterator[str]:
    """:func:`served`, yielding only the server's base URL."""
    with served(run_path, *args, log=log, timeout=timeout, settings=settings) as server:
        yield server.base

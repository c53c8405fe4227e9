"""Helpers for tests (samplescope's own, and yours): a small, fully analysed run.

``make_tiny_run`` trains the default CNN briefly on scikit-learn's bundled 8x8
digits (no download) and analyses it, so tests of the server, the report or a
user's own code have a real run to read in seconds.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def serving(run_path: str | Path, *args: str, log: Path | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Run ``samplescope serve RUN_PATH *args`` in a subprocess on a free port; yield its base URL.

    Waits until ``/api/run`` answers (or fails with the server's output); stops the server
    on exit. ``log`` keeps the server's output in that file.
    """
    import httpx

    port = free_port()
    log_path = Path(log) if log is not None else Path(tempfile.mkstemp(prefix="samplescope-serve-", suffix=".log")[1])
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "samplescope", "serve", str(run_path), "--port", str(port), *args],
            stdout=out, stderr=subprocess.STDOUT,
        )
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
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

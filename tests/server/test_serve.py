"""``serve()``: refuses what it cannot serve, warns off loopback, starts light."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from samplescope.errors import SamplescopeError
from samplescope.server import serve
from samplescope.testing import free_port

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "captum", "faiss", "umap", "openTSNE", "numba")


def test_missing_run_fails_before_listening(tmp_path):
    with pytest.raises(SamplescopeError, match="no run folder"):
        serve(tmp_path / "nothing-here", port=1)


def test_non_loopback_host_warns(tiny_run_path, monkeypatch, caplog):
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: started.append(self))
    with caplog.at_level(logging.WARNING, logger="samplescope.server.serve"):
        serve(tiny_run_path, host="0.0.0.0", port=8765, prewarm=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "0.0.0.0" in warnings[0]
    assert len(started) == 1 and started[0].config.host == "0.0.0.0"


def test_cli_prints_the_host_warning_once(tiny_run_path):
    """`samplescope serve --host 0.0.0.0` printed its warning twice (a log record and a print)."""
    code = """
import sys, uvicorn
uvicorn.Server.run = lambda self, *a, **k: None  # everything up to listening, then stop
from samplescope.cli import main
sys.exit(main(["serve", sys.argv[1], "--host", "0.0.0.0", "--port", sys.argv[2]]))
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(tiny_run_path), str(free_port())],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert text.count("other machines can reach") == 1, text


def test_loopback_host_does_not_warn(tiny_run_path, monkeypatch, capsys, caplog):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: None)
    with caplog.at_level(logging.WARNING, logger="samplescope.server.serve"):
        serve(tiny_run_path, prewarm=False)
    assert "WARNING" not in capsys.readouterr().out
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_startup_and_map_do_not_import_heavy_libraries(tiny_run_path):
    """torch, captum, faiss and umap load on the first heatmap or similar, not before."""
    code = f"""
import sys, warnings
from samplescope.server import Settings, create_app
app = create_app(sys.argv[1], Settings(prewarm=False))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
client = TestClient(app, base_url="http://127.0.0.1:8765")
for url in ("/", "/api/run", "/api/map?color=cluster", "/api/samples?sort=loss", "/api/samples/1"):
    assert client.get(url).status_code == 200, url
print(",".join(m for m in {HEAVY!r} if m in sys.modules))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tiny_run_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "", f"imported at startup: {out.stdout.strip()}"

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

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "captum", "faiss", "umap", "openTSNE", "numba")


def test_missing_run_fails_before_listening(tmp_path):
    with pytest.raises(SamplescopeError, match="no run folder"):
        serve(tmp_path / "nothing-here", port=1)


def test_non_loopback_host_warns(tiny_run_path, monkeypatch, capsys, caplog):
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: started.append(self))
    with caplog.at_level(logging.WARNING, logger="samplescope.server.serve"):
        serve(tiny_run_path, host="0.0.0.0", port=8765, prewarm=False)
    assert "WARNING" in capsys.readouterr().out
    assert any("0.0.0.0" in r.getMessage() for r in caplog.records)
    assert len(started) == 1 and started[0].config.host == "0.0.0.0"


def test_loopback_host_does_not_warn(tiny_run_path, monkeypatch, capsys):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: None)
    serve(tiny_run_path, prewarm=False)
    assert "WARNING" not in capsys.readouterr().out


def test_startup_and_map_do_not_import_heavy_libraries(tiny_run_path):
    """torch, captum, faiss and umap load on the first heatmap or similar, not before."""
    code = f"""
import sys, warnings
from samplescope.server import Settings, create_app
app = create_app(sys.argv[1], Settings(prewarm=False))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
client = TestClient(app)
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

"""Fixtures for the server tests: one small analysed run, the app over it, a live server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import pytest

from samplescope.server import Settings, create_app
from samplescope.testing import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_run_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from samplescope.testing import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("runs") / "tiny")


@pytest.fixture(scope="session")
def tiny_run(tiny_run_path: Path):
    from samplescope.run import open_run

    run = open_run(tiny_run_path)
    yield run
    run.close()


@pytest.fixture(scope="session")
def app(tiny_run):
    return create_app(tiny_run, Settings(prewarm=False))


def test_client_class():
    """Starlette's TestClient, without its warning about preferring httpx2 to httpx."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2.*")
        from fastapi.testclient import TestClient
    return TestClient


#: the base URL of in-process clients: a loopback name, so the Host check lets them in
LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="session")
def client(app):
    with test_client_class()(app, base_url=LOCAL) as c:
        yield c


@pytest.fixture(scope="session")
def live_server(tiny_run_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real server, ``samplescope.server.serve``, in a subprocess on a free loopback port."""
    port = free_port()
    code = "import sys; from samplescope.server import serve; serve(sys.argv[1], port=int(sys.argv[2]))"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tiny_run_path), str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            log.close()
            raise RuntimeError(f"server exited with {proc.returncode}: {log_path.read_text()}")
        try:
            if httpx.get(base + "/api/run", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            log.close()
            raise RuntimeError(f"server did not answer within 60 s: {log_path.read_text()}")
        time.sleep(0.05)
    yield base
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()

"""Fixtures for the server tests: one small analysed run, the app over it, a live server."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from samplescope.server import Settings, create_app

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


def untrusted_copy(run_path: Path, dest: Path, marker: Path) -> Path:
    """A copy of ``run_path`` at ``dest`` whose recorded integration is a file of its own that,
    if it ever ran, would write ``marker``: a run whose code nobody trusts."""
    import hashlib
    import json
    import shutil

    shutil.copytree(run_path, dest)
    evil = dest / "integration.py"
    evil.write_text(f"__import__('pathlib').Path({str(marker)!r}).write_text('ran')\n")
    info = json.loads((dest / "run.json").read_text())
    module = "samplescope_user_integration_" + hashlib.sha256(str(dest).encode()).hexdigest()[:10]
    info["integration"].update({"source": str(evil), "hash": hashlib.sha256(evil.read_bytes()).hexdigest(),
                                "module": module})  # fmt: skip
    (dest / "run.json").write_text(json.dumps(info))
    return dest


#: the base URL of in-process clients: a loopback name, so the Host check lets them in
LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="session")
def client(app):
    with test_client_class()(app, base_url=LOCAL) as c:
        yield c


@pytest.fixture(scope="session")
def live_server(tiny_run_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real server, ``samplescope serve``, in a subprocess on a free loopback port."""
    from samplescope.testing import serving

    with serving(tiny_run_path, log=tmp_path_factory.mktemp("server") / "server.log") as base:
        yield base

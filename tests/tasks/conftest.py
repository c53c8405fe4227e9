"""Small trained-and-analysed runs of the built-in task examples, once per session."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def client_for():
    """FastAPI's TestClient on a served run (without its httpx deprecation warning)."""
    from samplescope.server import Settings, create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2.*")
        from fastapi.testclient import TestClient
    # a loopback base URL, so the server's Host check lets the client in
    return lambda run_path: TestClient(create_app(run_path, Settings(prewarm=False)), base_url="http://127.0.0.1:8765")


@pytest.fixture(scope="session")
def diabetes_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The diabetes regression example: 353 train, 89 validation patients, 20 short epochs (about 220 steps)."""
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.pipeline.train import train_run

    out = tmp_path_factory.mktemp("tasks") / "diabetes"
    train_run("diabetes", out, epochs=20, seed=0, threads=1, progress=False, device="cpu")
    analyze_run(out, progress=False, device="cpu")
    return out


@pytest.fixture(scope="session")
def pairs_run(tmp_path_factory: pytest.TempPathFactory, mnist_env) -> Path:
    """The MNIST-pairs multi-label example, its first 1,200 train and validation pairs."""
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.pipeline.train import train_run

    out = tmp_path_factory.mktemp("tasks") / "pairs"
    train_run("mnist_pairs", out, limit=1200, recipe="fast", epochs=6, batch_size=64, seed=0, threads=1, progress=False,
              device="cpu")  # fmt: skip
    analyze_run(out, progress=False, device="cpu")
    return out

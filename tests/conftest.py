"""Shared fixtures: the local MNIST mirror and a session-wide data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Tests keep their trust list (samplescope.trust) away from the user's own config folder."""
    if "SAMPLESCOPE_CONFIG_DIR" not in os.environ:
        import tempfile

        os.environ["SAMPLESCOPE_CONFIG_DIR"] = tempfile.mkdtemp(prefix="samplescope-config-")


def mirror_path() -> Path | None:
    """The local MNIST mirror: $SAMPLESCOPE_MNIST_MIRROR, else ../shared/data/mnist beside the repo."""
    env = os.environ.get("SAMPLESCOPE_MNIST_MIRROR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data" / "mnist")
    return next((p for p in candidates if p.is_dir()), None)


@pytest.fixture(scope="session")
def mnist_mirror(request: pytest.FixtureRequest) -> Path:
    """A local mirror folder for the fetcher's tests.

    The machine's mirror when there is one; otherwise the data folder that
    ``mnist_env`` filled through the project's own public sources (it holds the
    same four verified files, uncompressed, which a mirror may do too).
    """
    path = mirror_path()
    if path is not None:
        return path
    return request.getfixturevalue("mnist_env")


@pytest.fixture(scope="session")
def mnist_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fetch MNIST once per session into a temp data dir and point samplescope at it.

    From the local mirror when there is one; otherwise through the project's own
    fetcher and its public sources.
    """
    from samplescope.data.mnist import fetch_mnist

    data_dir = tmp_path_factory.mktemp("mnist-data")
    mp = pytest.MonkeyPatch()
    mp.setenv("SAMPLESCOPE_DATA_DIR", str(data_dir))
    mirror = mirror_path()
    if mirror is not None:
        mp.setenv("SAMPLESCOPE_MNIST_MIRROR", str(mirror))
    fetch_mnist(progress=False)
    yield data_dir
    mp.undo()


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests are CPU-only and small: one torch thread keeps them predictable on 2 cores."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def check_held_columns(monkeypatch: pytest.MonkeyPatch):
    """A check for a large run's server state: each named map column it holds equals what its
    coder makes from the table (codes, dtype, legend entry), and none was read from the table
    to get it (they came from analyze's saved files). Returns the coder's own ``whole`` and the
    list of columns read from the table since (the watch stays on for the rest of the test)."""
    import numpy as np

    def check(state, names):
        reads: list[str] = []
        whole = state.coder.whole
        monkeypatch.setattr(state.coder, "whole", lambda name: reads.append(name) or whole(name))
        for name in names:
            codes, entry = state.held_map.column(name)
            want, want_entry = whole(name)
            assert codes.dtype == want.dtype and entry == want_entry, name
            np.testing.assert_array_equal(codes, want)
        assert reads == [], f"read from the table, not loaded: {reads}"
        return whole, reads

    return check

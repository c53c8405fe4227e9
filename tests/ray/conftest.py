"""Fixtures for the Ray engine's tests: one small analysed digits run (the embedded engine's
reference) and fresh copies of it; Ray itself is started by each test module, small.

No ``__init__.py`` here: a package named ``ray`` under tests/ would shadow Ray itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

#: a Ray node's shared-memory object store in these tests (Ray's minimum is 75 MiB)
OBJECT_STORE = 80 * 2**20


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits run analysed by the embedded engine (PCA map, seed 0): what Ray must reproduce."""
    from samplescope.testing import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("ray-reference") / "digits")


@pytest.fixture
def run_copy(reference_run: Path, tmp_path: Path) -> Path:
    path = tmp_path / "digits"
    shutil.copytree(reference_run, path)
    return path


@pytest.fixture
def leftovers():
    """``leftovers(run)``: the Ray engine's temporary shard folders beside ``run`` (none once a job ended)."""

    def shard_folders(run: Path) -> list[Path]:
        return sorted(run.parent.glob(f".{run.name}.tmp-*-ray-*"))

    return shard_folders


@pytest.fixture(scope="session")
def object_store() -> int:
    return OBJECT_STORE

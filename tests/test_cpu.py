"""samplescope/cpu.py: OpenMP threads sleep instead of spinning only on a busy machine."""

from __future__ import annotations

import os
import sys

import pytest

from samplescope.cpu import busy_cores, settle_openmp


@pytest.fixture
def no_torch(monkeypatch):
    """As the command line sees it: torch not loaded yet."""
    monkeypatch.delitem(sys.modules, "torch", raising=False)


def test_busy_machine_gets_passive_threads(no_torch):
    env: dict[str, str] = {}
    assert settle_openmp(env, busy=1.0) == "PASSIVE"
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_idle_machine_keeps_spinning_threads(no_torch):
    env: dict[str, str] = {}
    assert settle_openmp(env, busy=0.2) is None
    assert env == {}


@pytest.mark.parametrize("setting", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "300000"}])
def test_the_users_own_setting_wins(no_torch, setting):
    env = dict(setting)
    assert settle_openmp(env, busy=2.0) is None
    assert env == setting


def test_too_late_once_torch_is_loaded():
    import torch  # noqa: F401

    env: dict[str, str] = {}
    assert settle_openmp(env, busy=2.0) is None
    assert env == {}


def test_busy_cores_is_a_share_of_the_machine():
    value = busy_cores(seconds=0.05)
    assert 0.0 <= value <= (os.cpu_count() or 1) + 1e-9

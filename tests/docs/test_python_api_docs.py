"""docs/python-api.md stays complete: every public function and every Run member has a section."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import samplescope
import samplescope.integration as integration_api
from samplescope.run import Run

DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def _headings() -> list[str]:
    return [line for line in DOC.read_text().splitlines() if line.startswith("#")]


def _run_members() -> list[str]:
    return sorted(name for name in vars(Run) if not name.startswith("_"))


def _documented(pattern: str) -> bool:
    return any(re.search(pattern, h) for h in _headings())


@pytest.mark.parametrize("name", sorted(samplescope.__all__))
def test_every_public_name_has_a_section(name):
    assert _documented(rf"`(samplescope\.)?{name}\b"), f"{name} is not in docs/python-api.md"


@pytest.mark.parametrize("name", _run_members())
def test_every_run_member_has_a_section(name):
    assert _documented(rf"`run\.{name}\b"), f"Run.{name} has no section in docs/python-api.md"


@pytest.mark.parametrize(
    "qualified",
    [
        "samplescope.testing.make_tiny_run",
        "samplescope.data.mnist.fetch_mnist",
        "samplescope.data.mnist.load_mnist",
        "samplescope.report.build_report",
        *(f"samplescope.integration.{n}" for n in integration_api.__all__),
    ],
)
def test_helpers_have_a_section(qualified):
    name = qualified.rsplit(".", 1)[1]
    assert _documented(rf"`[\w.]*\b{name}\b"), f"{qualified} has no section in docs/python-api.md"


def test_documented_run_members_exist():
    """No section for a Run member that was renamed or removed."""
    for heading in _headings():
        for name in re.findall(r"`run\.(\w+)", heading):
            known = {*_run_members(), "path", "info", "db"}
            assert name in known, f"docs/python-api.md documents run.{name}, which does not exist"

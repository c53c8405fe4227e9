"""The docs stay honest: every CLI command and option, and every public function, is documented."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from samplescope.cli import _parser

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_has_a_section():
    text = (DOCS / "cli.md").read_text()
    for name in _subcommands():
        assert f"## `samplescope {name}" in text, f"docs/cli.md has no section for `samplescope {name}`"


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_option_is_documented(command):
    text = (DOCS / "cli.md").read_text()
    section = text.split(f"## `samplescope {command}", 1)[1].split("\n## ", 1)[0]
    for action in _subcommands()[command]._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in section, f"`samplescope {command} {flag}` is missing from docs/cli.md"


def test_global_options_are_documented():
    text = (DOCS / "cli.md").read_text().split("## `samplescope", 1)[0]
    for action in _parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in text, f"global option {flag} is missing from docs/cli.md"

"""`samplescope demo` ends with one line saying where its time went."""

from __future__ import annotations

import sys
import time

from samplescope import cli


def test_split_line_names_every_stage_and_the_total():
    line = cli._demo_split({"install": 61.2, "fetch": 0.4, "train": 83.0, "analyse": "reused", "serve start-up": 2.6})
    assert line == "demo time: install 61 s, fetch 0 s, train 83 s, analyse reused, serve start-up 3 s; 147 s in all"


def test_install_seconds_come_from_the_makefiles_stamp(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert cli._install_seconds() == "not measured"
    (tmp_path / "samplescope-install-seconds").write_text(f"75 {time.time():.0f}\n")
    assert cli._install_seconds() == 75.0
    (tmp_path / "samplescope-install-seconds").write_text(f"75 {time.time() - 7200:.0f}\n")
    assert cli._install_seconds() == "reused"  # an install from earlier is not this demo's

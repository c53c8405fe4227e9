"""docs/integrate.md cannot rot: its code blocks are run, in order, in an empty folder.

- ```python blocks whose first line is ``# file: NAME`` are written to NAME (blocks
  naming the same file are appended in order, as the guide builds it step by step);
- other ```python blocks are run as scripts, in the same folder;
- ```bash blocks are run line by line: ``samplescope ...`` through ``python -m
  samplescope`` with small limits (one epoch on 300 samples per subset, a PCA map),
  ``python FILE.py`` with this interpreter; ``samplescope serve`` (which never
  returns) is only checked to be a valid command;
- the ```text block after ``samplescope check`` is the expected output.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from samplescope.cli import _parser

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "integrate.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)
FILE_MARK = re.compile(r"#\s*file:\s*(\S+)")
#: what the test adds to the guide's commands to keep them quick
LIMITS = {"train": ["--epochs", "1", "--limit", "300"], "analyze": ["--projection", "pca"]}
NOT_RUN = {"serve"}  # serves until interrupted


def blocks() -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in FENCE.findall(GUIDE.read_text())]


def command(line: str) -> list[str] | None:
    """The argv a guide line runs as, or None for a samplescope command that is not run."""
    words = shlex.split(line)
    if words[0] == "python" and len(words) == 2 and words[1].endswith(".py"):
        return [sys.executable, words[1]]
    assert words[0] == "samplescope", f"docs/integrate.md runs {line!r}: not samplescope/python"
    _parser().parse_args(words[1:])  # every command in the guide is valid, run or not
    if words[1] in NOT_RUN:
        return None
    return [sys.executable, "-m", "samplescope", *words[1:], *LIMITS.get(words[1], [])]


def test_the_guide_is_made_of_runnable_blocks():
    kinds = [lang for lang, _ in blocks()]
    assert set(kinds) <= {"python", "bash", "text"}, kinds
    files: dict[str, str] = {}
    for lang, body in blocks():
        if lang == "bash":
            for line in body.splitlines():
                if line.strip() and not line.startswith("#"):
                    command(line)
        mark = FILE_MARK.match(body) if lang == "python" else None
        if mark:
            files[mark.group(1)] = files.get(mark.group(1), "") + body.split("\n", 1)[1] + "\n"
    assert set(files) == {"my_digits.py", "train_tiny_net.py"}
    for name, text in files.items():
        compile(text, name, "exec")


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Follow the guide in an empty folder; returns the folder and every command's output."""
    folder = tmp_path_factory.mktemp("guide")
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    written: set[str] = set()
    outputs: list[tuple[str, str]] = []  # (what ran, its stdout)
    expected_check = None
    for lang, body in blocks():
        if lang == "text":
            if outputs and outputs[-1][0].startswith("samplescope check"):
                expected_check = body
            continue
        mark = FILE_MARK.match(body) if lang == "python" else None
        if mark:
            name = mark.group(1)
            with open(folder / name, "a" if name in written else "w") as f:
                f.write(body.split("\n", 1)[1] + "\n")
            written.add(name)
            continue
        if lang == "python":
            script = folder / f"_block_{len(outputs)}.py"
            script.write_text(body)
            runs = [("python block", [sys.executable, script.name])]
        else:
            lines = [ln for ln in body.splitlines() if ln.strip() and not ln.startswith("#")]
            runs = [(line, command(line)) for line in lines]
        for what, argv in runs:
            if argv is None:
                continue
            done = subprocess.run(
                argv, cwd=folder, env=env, capture_output=True, text=True, timeout=600, check=False
            )
            failed = f"`{what}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            assert done.returncode == 0, failed
            outputs.append((what, done.stdout))
    return {"folder": folder, "outputs": outputs, "expected_check": expected_check}


def test_the_integration_passes_check_as_shown(guide: dict):
    ran = dict(guide["outputs"])
    assert ran["samplescope check my_digits.py"].strip() == guide["expected_check"].strip()


def test_both_runs_are_analysed_and_answer_queries(guide: dict):
    import samplescope

    for name in ("my-digits", "my-digits-tinynet"):
        run = samplescope.open_run(guide["folder"] / "runs" / name)
        assert run.analyzed
        similar = run.similar(0, k=5)
        assert len(similar) == 5 and similar["similarity"].is_monotonic_decreasing
        run.close()
    tiny = samplescope.open_run(guide["folder"] / "runs" / "my-digits-tinynet")
    assert tiny.latent_layer == "head"
    assert tiny.latent().shape == (1797, 32)
    assert {"ink", "dist_to_gt_centroid", "dist_to_centroid_9"} <= set(tiny.metadata_columns())
    tiny.close()


def test_the_python_session_and_the_report_work(guide: dict):
    session = next(out for what, out in guide["outputs"] if what == "python block")  # the first: the session
    assert "validation accuracy" in session and "similarity" in session
    assert (guide["folder"] / "my-digits-report" / "report.html").is_file()

"""Bad CLI input ends in one line on stderr and exit status 2, never a traceback or a silent default."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from samplescope.cli import main
from samplescope.errors import IntegrationError, ParameterError
from samplescope.pipeline.train import train_run


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    # what a terminal shows: a progress bar that erased itself (\r) leaves no line
    shown = [line.split("\r")[-1] for line in err.split("\n")]
    return code, "\n".join(line for line in shown if line.strip())


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, err = run_cli(capsys, *argv)
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--epochs", "0"], r"--epochs: 0 is out of range; pass a whole number from 1 up"),
        (["train", "--epochs", "-2"], r"--epochs: -2 is out of range"),
        (["train", "--lr", "0"], r"--lr: 0.0 is out of range; pass a number above 0"),
        (["train", "--lr", "-0.1"], r"--lr: -0.1 is out of range"),
        (["train", "--lr", "nan"], r"--lr: nan is not finite"),
        (["train", "--batch-size", "0"], r"--batch-size: 0 is out of range"),
        (["train", "--threads", "0"], r"--threads: 0 is out of range"),
        (["train", "--threads", "-1"], r"--threads: -1 is out of range"),
        (["train", "--limit", "0"], r"--limit: 0 is out of range"),
        (["train", "--limit", "-5"], r"--limit: -5 is out of range"),
        (["train", "--epochs", "two"], r"--epochs: 'two' is not a whole number"),
        (["train", "--seed", "-1"], r"--seed: -1 is out of range; pass a whole number from 0 to 4294967295"),
        (["serve", "runs/x", "--port", "99999"], r"--port: 99999 is out of range; pass a whole number from 1 to 65535"),
        (["serve", "runs/x", "--port", "0"], r"--port: 0 is out of range"),
        (["demo", "--port", "70000"], r"--port: 70000 is out of range"),
        (["check", "digits", "--samples", "0"], r"--samples: 0 is out of range"),
        (["analyze", "runs/x", "--seed", "-3"], r"--seed: -3 is out of range"),
        (["analyze"], r"the following arguments are required: run"),
    ],
)
def test_bad_option_values_are_refused_in_one_line(capsys, argv, expected):
    import re

    err = one_line_error(capsys, *argv)
    assert re.search(expected, err), err
    assert f"samplescope {argv[0]} --help" in err  # the fix: where the allowed values are listed


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("epochs", 0, r"epochs=0 is out of range in train_run\(\); pass a whole number from 1 up"),
        ("lr", 0.0, r"lr=0.0 is out of range"),
        ("batch_size", 0, r"batch_size=0 is out of range"),
        ("threads", 0, r"threads=0 is out of range"),
        ("limit", 0, r"limit=0 is out of range"),
        ("epochs", -1, r"epochs=-1 is out of range"),
        ("epochs", 2.5, r"epochs=2.5 is not a whole number"),
        ("batch_size", True, r"batch_size=True is not a number"),
    ],
)
def test_python_api_refuses_the_same_values(tmp_path, option, value, message):
    # before: epochs=0, lr=0, batch_size=0 and threads=0 silently trained with the defaults
    with pytest.raises(ParameterError, match=message):
        train_run("digits", tmp_path / "run", progress=False, **{option: value})
    assert not list(tmp_path.iterdir()), "nothing is written for a refused call"


def test_port_in_use_names_the_port_and_the_fix(capsys, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = one_line_error(capsys, "serve", str(tmp_path / "no-run-needed"), "--port", str(port))
    assert f"Port {port} on 127.0.0.1 is already in use" in err and "--port" in err


# -- train runs the integration checks first --------------------------------------------------

HEALTHY = '''
import numpy as np
from samplescope import Integration, Subset

broken = Integration("broken", classes=["a", "b", "c"])
rng = np.random.default_rng(0)
IMAGES = rng.random((40, 1, 8, 8)).astype(np.float32)
LABELS = rng.integers(0, 3, 40)
TRAIN_IDS = list(range(30))


@broken.subset("train")
def train(state):
    return Subset(ids=TRAIN_IDS, data=None)


@broken.subset("validation")
def validation(state):
    return Subset(ids=list(range(30, 40)), data=None)


@broken.input("image")
def image(s):
    return IMAGES[s.id]


@broken.ground_truth
def label(s):
    return int(LABELS[s.id])


@broken.metadata("stats")
def stats(s):
    return {"mean": float(IMAGES[s.id].mean())}
'''


def _unpicked_train_index() -> int:
    """A train sample the checks do not look at (they sample 8 of 30), to test the full-subset check."""
    from samplescope.integration.check import _pick

    return min(set(range(30)) - {int(i) for i in _pick(30, 8, 0)})


BREAKAGES = {
    "label out of range": (
        "return int(LABELS[s.id])", "return 7",
        r"ground_truth function 'label': returned class index 7, outside 0\.\.2",
    ),
    "label out of range on one unchecked sample": (
        "return int(LABELS[s.id])", "return 5 if s.id == UNPICKED else int(LABELS[s.id])",
        r"ground truth of sample train\[(\d+)\] is class index 5, outside 0\.\.2 \(1 such samples in train\)",
    ),
    "varying shapes": (
        "return IMAGES[s.id]", "return IMAGES[s.id][:, : 8 - s.id % 2]",
        r"input function 'image': returned shape \(1, 7, 8\), but \(1, 8, 8\)",
    ),
    "empty subset": (
        "return Subset(ids=TRAIN_IDS, data=None)", "return Subset(ids=[], data=None)",
        r"subset function 'train': no samples \(ids is empty\)",
    ),
    "metadata returning a list": (
        'return {"mean": float(IMAGES[s.id].mean())}', "return [1, 2]",
        r"metadata function 'stats': returned \[1, 2\] \(list\)",
    ),
}


def test_the_healthy_integration_file_trains(capsys, tmp_path):
    file = tmp_path / "healthy.py"
    file.write_text(HEALTHY)
    code, err = run_cli(capsys, "train", "--integration", str(file), "--out", str(tmp_path / "run"),
                        "--epochs", "1", "--threads", "1")
    assert code == 0, err
    assert (tmp_path / "run" / "run.json").is_file()


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_train_refuses_a_broken_integration_before_training(capsys, tmp_path, case):
    old, new, message = BREAKAGES[case]
    assert old in HEALTHY
    file = tmp_path / "integ.py"
    file.write_text(HEALTHY.replace(old, new) + f"\nUNPICKED = {_unpicked_train_index()}\n")
    out = tmp_path / "runs" / "run"
    err = one_line_error(capsys, "train", "--integration", str(file), "--out", str(out), "--epochs", "1")
    import re

    match = re.search(message, err)
    assert match, err
    if case.endswith("unchecked sample"):
        assert int(match.group(1)) == _unpicked_train_index()
    assert "samplescope check" in err  # the fix
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir())), "nothing is left behind"


def test_train_run_raises_integration_error_for_a_broken_file(tmp_path):
    file = tmp_path / "integ.py"
    file.write_text(HEALTHY.replace('return {"mean": float(IMAGES[s.id].mean())}', "return [1, 2]"))
    with pytest.raises(IntegrationError, match=rf"samplescope check {file}"):
        train_run(file, tmp_path / "run", epochs=1, progress=False)


def test_docs_list_the_ranges():
    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    for needle in ("1 to 65535", "`--epochs N` | training epochs, N >= 1", "`--lr X` | peak learning rate"):
        assert needle in text, needle

"""End to end through the CLI: fetch from the local mirror, train briefly, check the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from samplescope.store import RunDatabase, layout

pytestmark = pytest.mark.slow


def cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "samplescope", *args], capture_output=True, text=True, check=False, timeout=timeout,
        env={**os.environ, "SAMPLESCOPE_THREADS_HINT": "1", **(env or {})},
    )


@pytest.fixture(scope="module")
def mnist_run(mnist_env, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "mnist"
    proc = cli("train", "--out", str(out), "--limit", "2000", "--epochs", "3", "--batch-size", "64", "--threads", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "validation accuracy" in proc.stdout
    return out


def test_fetch_from_local_mirror(mnist_env, tmp_path):
    proc = cli("--data-dir", str(tmp_path / "d"), "fetch", "mnist")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (tmp_path / "d").iterdir() if not p.name.startswith("."))
    assert {"train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"} <= set(names)


def test_run_folder_and_database(mnist_run):
    info = json.loads((mnist_run / "run.json").read_text())
    assert info["subsets"] == {"train": 2000, "validation": 2000}
    assert info["integration"]["name"] == "mnist" and info["integration"]["hash"]
    assert info["metrics"]["val_acc"] > 0.6  # three short epochs on 2,000 images
    assert (mnist_run / layout.WEIGHTS).is_file()
    assert not list(mnist_run.parent.glob(".mnist.*")), "temporary folders left behind"
    with RunDatabase(mnist_run / "samples.duckdb") as db:
        df = db.samples()
        history = db.history()
    assert len(df) == 4000 and df["sample_id"].is_unique
    assert list(df.groupby("subset").size().sort_index()) == [2000, 2000]
    for column in ["index", "label", "dist_to_centroid_3", "dist_to_gt_centroid", "nearest_centroid",
                   "gt_centroid_rank", "ink", "slant", "bbox_aspect", "com_offset", "circle", "even_odd"]:
        assert column in df.columns, column
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "elapsed_s", "epoch", "step"} <= set(history.columns)
    assert (history["kind"] == "epoch").sum() == 3


def test_runs_lists_accuracy(mnist_run):
    proc = cli("runs", str(mnist_run.parent))
    assert proc.returncode == 0 and "mnist" in proc.stdout and "%" in proc.stdout


def test_existing_output_folder_is_refused(mnist_run):
    proc = cli("train", "--out", str(mnist_run), "--limit", "100", "--epochs", "1")
    assert proc.returncode == 2
    assert "already exists" in proc.stderr and "--overwrite" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unwritable_output_folder(mnist_env, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root ignores permissions; use a path under a file instead
        target = tmp_path / "a-file"
        target.write_text("x")
        out = target / "run"
    else:
        out = locked / "run"
    proc = cli("train", "--out", str(out), "--limit", "100", "--epochs", "1")
    assert proc.returncode == 2, proc.stderr
    assert "Cannot write" in proc.stderr or "writable" in proc.stderr, proc.stderr


def test_resume_without_checkpoint_is_a_clear_error(mnist_env, tmp_path):
    proc = cli("train", "--out", str(tmp_path / "r"), "--limit", "100", "--epochs", "1", "--resume")
    assert proc.returncode == 2
    assert "checkpoint" in proc.stderr.lower() and "Traceback" not in proc.stderr


def test_missing_data_and_no_source(tmp_path):
    env = {"SAMPLESCOPE_DATA_DIR": str(tmp_path / "empty"), "SAMPLESCOPE_MNIST_MIRROR": str(tmp_path / "nothing"),
           "PATH": "/nonexistent",  # no npm
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}  # no HTTP mirror
    proc = subprocess.run([sys.executable, "-m", "samplescope", "fetch", "mnist"], capture_output=True, check=False,
                          text=True, timeout=120, env={**os.environ, **env})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "mirror" in proc.stderr.lower()


def test_interrupted_training_keeps_earlier_run_and_resumes(mnist_run, tmp_path):
    import shutil

    out = tmp_path / "mnist"
    shutil.copytree(mnist_run, out)
    before = (out / layout.WEIGHTS).read_bytes()
    # long enough (6 epochs) that the interrupt lands while it trains, right after the first checkpoint
    args = ["train", "--out", str(out), "--limit", "6000", "--epochs", "6", "--batch-size", "64", "--threads", "1",
            "--overwrite"]
    # A shell's background job (CI's, say) starts with SIGINT ignored, the child would inherit
    # that and never raise KeyboardInterrupt; a handled signal is reset to its default by exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    with (tmp_path / "train.log").open("w") as log:  # a file, not a pipe nobody reads while we wait
        proc = subprocess.Popen([sys.executable, "-m", "samplescope", *args], stdout=log, stderr=log)
        signal.signal(signal.SIGINT, previous)
        partial = tmp_path / ".mnist.partial" / "checkpoint.pt"
        deadline = time.time() + 300
        while not partial.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert partial.exists(), "no checkpoint written after the first epoch"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=180)
    assert code == 130, (tmp_path / "train.log").read_text()[-2000:]
    assert (out / layout.WEIGHTS).read_bytes() == before, "the earlier run was touched"
    assert not list(tmp_path.glob(".mnist.tmp-*"))
    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    info = json.loads((out / "run.json").read_text())
    assert info["subsets"]["train"] == 6000 and info["metrics"]["val_acc"] > 0.6

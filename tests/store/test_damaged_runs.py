"""Damaged runs, full disks and leftovers of killed jobs: one-line errors, earlier results intact."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import samplescope
from samplescope.cli import main
from samplescope.errors import RunError
from samplescope.store import folder
from samplescope.testing import make_tiny_run


@pytest.fixture
def run_path(tmp_path) -> Path:
    return make_tiny_run(tmp_path / "runs" / "digits")  # built once per process, copied after


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err
    shown = [line.split("\r")[-1] for line in err.split("\n")]  # erased progress bars leave no line
    lines = [line for line in shown if line.strip() and "%|" not in line]  # nor does a finished one
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def temporaries(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.") and
                  ".tiny-cache" not in p.name)


# -- damaged files ---------------------------------------------------------------------------


def test_deleted_latent(run_path, capsys):
    (run_path / "latent.npy").unlink()
    run = samplescope.open_run(run_path)
    for call in (run.latent, lambda: run.similar(3, k=5)):
        with pytest.raises(RunError, match=r"latent\.npy is missing .*samplescope analyze"):
            call()
    run.close()
    err = one_line_error(capsys, "report", str(run_path))
    assert "latent.npy is missing" in err and "samplescope analyze" in err


def test_truncated_latent(run_path):
    data = (run_path / "latent.npy").read_bytes()
    (run_path / "latent.npy").write_bytes(data[: len(data) // 3])
    with pytest.raises(RunError, match=r"latent\.npy cannot be read .*damaged, analyse the run again"):
        samplescope.open_run(run_path).latent()


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_database(run_path, capsys, keep):
    db = run_path / "samples.duckdb"
    data = db.read_bytes()
    db.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(RunError, match=r"samples\.duckdb .*train the run again"):
        samplescope.open_run(run_path).samples()  # a file cut in half opens; its first read fails
    for command in ("analyze", "report"):
        err = one_line_error(capsys, command, str(run_path))
        assert "samples.duckdb" in err and "samplescope train --overwrite" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (os.urandom(256) + b"\xff", r"run\.json is not UTF-8 text"),
        (b"{not json", r"run\.json is not valid JSON"),
        (b"{}", r"run\.json has no valid 'integration' \(missing"),
        (b"[1,2]", r"run\.json holds a JSON list, not an object"),
        (b'{"integration": [], "model": {}, "subsets": {}, "input_shape": []}',
         r"run\.json has no valid 'integration' \(a list"),
        (b'{"integration": {"classes": []}, "model": {}, "subsets": {}, "input_shape": []}',
         r"run\.json lists no integration classes"),
    ],
)
def test_damaged_run_json(run_path, capsys, content, message):
    (run_path / "run.json").write_bytes(content)
    with pytest.raises(RunError, match=message):
        samplescope.open_run(run_path)
    err = one_line_error(capsys, "report", str(run_path))
    assert "run.json" in err and "train it again" in err


def test_runs_lists_every_run_and_each_damaged_one(run_path, capsys):
    runs = run_path.parent
    for name, damage in [("a-random", os.urandom(64)), ("b-empty", b"{}"), ("c-list", b"[1,2]")]:
        shutil.copytree(run_path, runs / name)
        (runs / name / "run.json").write_bytes(damage)
    shutil.copytree(run_path, runs / "d-truncated-db")
    (runs / "d-truncated-db" / "samples.duckdb").write_bytes(b"")
    shutil.copytree(run_path, runs / "e-good")
    code = main(["runs", str(runs)])
    out, err = capsys.readouterr()
    assert code == 1
    table = out.splitlines()
    assert table[0].split()[:2] == ["run", "samples"]
    rows = {line.split()[0]: line for line in table[1:]}
    assert sorted(rows) == ["a-random", "b-empty", "c-list", "d-truncated-db", "digits", "e-good"]
    for name in ("digits", "e-good"):
        assert "1,797" in rows[name] and "%" in rows[name] and "yes" in rows[name]
    errors = err.splitlines()
    assert len(errors) == 4 and all(line.startswith("error: run ") for line in errors), err
    assert "Traceback" not in err


# -- disk space ------------------------------------------------------------------------------------


def test_analyze_checks_free_space_first(run_path, capsys, monkeypatch):
    before = {p.name: p.read_bytes() for p in run_path.iterdir() if p.is_file()}
    size = folder.folder_bytes(run_path)
    monkeypatch.setattr(folder, "free_bytes", lambda path: size)  # room for one copy, not two
    err = one_line_error(capsys, "analyze", str(run_path))
    assert f"Not enough free space in {run_path.parent}" in err
    assert f"{2 * size + folder.MIN_FREE_BYTES:,} bytes needed, {size:,} free" in err
    assert {p.name: p.read_bytes() for p in run_path.iterdir() if p.is_file()} == before
    assert temporaries(run_path) == []


def test_train_estimates_the_space_it_needs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(folder, "free_bytes", lambda path: 10_000)
    err = one_line_error(capsys, "train", "--integration", "digits", "--limit", "50", "--epochs", "1",
                         "--out", str(tmp_path / "run"))
    assert f"Not enough free space in {tmp_path}" in err and "10,000 free" in err
    assert not (tmp_path / "run").exists()


def test_full_disk_while_analyze_writes(run_path, capsys, monkeypatch):
    before = (run_path / "latent.npy").read_bytes(), (run_path / "run.json").read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    monkeypatch.setattr(np.memmap, "flush", full)  # the kNN graph is searched into mapped files
    err = one_line_error(capsys, "analyze", str(run_path))
    assert "The disk is full" in err and str(run_path.parent) in err and "earlier results are intact" in err
    assert ((run_path / "latent.npy").read_bytes(), (run_path / "run.json").read_bytes()) == before
    assert temporaries(run_path) == []


def test_full_disk_while_analyze_maps_its_arrays(run_path, capsys, monkeypatch):
    """The latent and sketches are memory-mapped files allocated up front: a full disk is the
    one-line error then (a sparse file would kill the process with SIGBUS later)."""
    before = (run_path / "latent.npy").read_bytes(), (run_path / "run.json").read_bytes()

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    err = one_line_error(capsys, "analyze", str(run_path))
    assert "The disk is full" in err and str(run_path.parent) in err and "earlier results are intact" in err
    assert ((run_path / "latent.npy").read_bytes(), (run_path / "run.json").read_bytes()) == before
    assert temporaries(run_path) == []


def test_full_disk_while_train_writes_keeps_the_previous_run(run_path, capsys, monkeypatch):
    from samplescope.store.database import RunDatabase

    before = (run_path / "run.json").read_bytes()

    def full(self, df):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RunDatabase, "write_samples", full)
    err = one_line_error(capsys, "train", "--integration", "digits", "--limit", "60", "--epochs", "1",
                         "--batch-size", "32", "--threads", "1", "--out", str(run_path), "--overwrite")
    assert "The disk is full" in err and "digits" in err
    assert (run_path / "run.json").read_bytes() == before
    assert temporaries(run_path) == [".digits.partial"]  # the checkpoint, for --resume


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_report_on_a_really_full_disk(run_path, capsys, monkeypatch, small_disk):
    out = small_disk / "report"
    err = one_line_error(capsys, "report", str(run_path), "--out", str(out))  # the check: 512 KiB < 1 MiB
    assert f"Not enough free space in {small_disk}" in err
    monkeypatch.setattr(folder, "require_free_space", lambda *a: None)  # past the check: the write fails
    err = one_line_error(capsys, "report", str(run_path), "--out", str(out))
    assert "The disk is full" in err and str(small_disk) in err
    assert list(small_disk.iterdir()) == []


# -- leftovers of killed jobs --------------------------------------------------------------------------


def _dead_pid() -> int:
    pid = 999_999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_stale_temporary_copies_are_removed_on_the_next_write(run_path, capsys):
    parent, dead = run_path.parent, _dead_pid()
    live = subprocess.Popen(["sleep", "60"])
    try:
        names = {
            "dead_tmp": f".digits.tmp-{dead}-abc123", "dead_old": f".digits.old-{dead}-0f0f0f0f",
            "live_tmp": f".digits.tmp-{live.pid}-xyz789", "fresh_unknown": ".digits.tmp-k2_9q",
            "old_unknown": ".digits.tmp-a8_zz", "old_live": f".digits.tmp-{live.pid}-old000",
            "partial": ".digits.partial", "other_run": f".other.tmp-{dead}-abc",
        }
        for name in names.values():
            (parent / name).mkdir()
            (parent / name / "x").write_text("x")
        hours_ago = time.time() - folder.STALE_AFTER_S - 60
        for key in ("old_unknown", "old_live"):
            os.utime(parent / names[key], (hours_ago, hours_ago))
        assert main(["analyze", str(run_path)]) == 0, capsys.readouterr().err
    finally:
        live.kill()
        live.wait()
    left = {p.name for p in parent.iterdir()}
    for key in ("dead_tmp", "dead_old", "old_unknown", "old_live"):
        assert names[key] not in left, key
    for key in ("live_tmp", "fresh_unknown", "partial", "other_run"):
        assert names[key] in left, key


def test_an_old_copy_whose_run_went_missing_is_put_back(tmp_path):
    final = tmp_path / "run"
    old = tmp_path / f".run.old-{_dead_pid()}-12345678"
    old.mkdir()
    (old / "run.json").write_text("{}")
    assert folder.remove_stale_copies(final) == [old]
    assert (final / "run.json").read_text() == "{}" and not old.exists()


def test_a_damaged_precomputed_gradcam_file_is_named(tmp_path):
    """analyze --heatmaps all writes heatmaps_gradcam.npy; a truncated copy is a one-line RunError."""
    import samplescope
    from samplescope.errors import RunError
    from samplescope.store import layout
    from samplescope.testing import make_tiny_run

    path = make_tiny_run(tmp_path / "run")
    (path / layout.GRADCAM).write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(RunError, match=r"heatmaps_gradcam.npy cannot be read.*--heatmaps all"):
        samplescope.open_run(path).heatmap(0, method="gradcam")


@pytest.mark.parametrize("edit", ["repeated", "reordered"])
def test_sample_ids_are_checked_in_any_row_order(run_path, edit):
    """Ids must be 0..N-1: a repeated id is a one-line error, whether the table's rows are in id
    order (checked against the row ids) or not (the distinct ids are counted)."""
    import duckdb

    db = run_path / "samples.duckdb"
    before = samplescope.open_run(run_path)
    n = len(before)
    before.close()
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE shuffled AS SELECT * FROM samples ORDER BY hash(sample_id)")
    con.execute("DROP TABLE samples")
    con.execute("ALTER TABLE shuffled RENAME TO samples")
    if edit == "repeated":  # the same count, min and max: only the distinct count tells
        con.execute("UPDATE samples SET sample_id = 0 WHERE sample_id = 1")
    con.close()
    run = samplescope.open_run(run_path)
    if edit == "repeated":
        with pytest.raises(RunError, match=r"sample ids are not 0\.\.N-1; the run is damaged"):
            len(run)
    else:
        assert len(run) == n
    run.close()


def test_a_repeated_id_in_id_order_is_caught(run_path):
    import duckdb

    con = duckdb.connect(str(run_path / "samples.duckdb"))
    con.execute("UPDATE samples SET sample_id = 0 WHERE sample_id = 1")  # rows stay where they are
    con.close()
    with pytest.raises(RunError, match=r"sample ids are not 0\.\.N-1"):
        len(samplescope.open_run(run_path))


@pytest.mark.parametrize("version", [99, "2", 0, True])
def test_a_run_of_an_unknown_layout_names_the_versions_and_the_fix(run_path, capsys, version):
    """A run written by a newer samplescope (or a layout_version that is no version) is refused
    in one line, before anything is read the wrong way."""
    import json

    info = json.loads((run_path / "run.json").read_text())
    info["layout_version"] = version
    (run_path / "run.json").write_text(json.dumps(info))
    line = one_line_error(capsys, "report", str(run_path))
    assert f"has layout_version {version!r}; this samplescope reads layouts 1 to 2" in line
    assert "upgrade samplescope" in line


@pytest.mark.parametrize("version", ["3", "x"])
def test_a_database_of_an_unknown_schema_names_the_versions_and_the_fix(run_path, version):
    from samplescope.store import RunDatabase, layout

    with RunDatabase(run_path / layout.DATABASE, writable=True) as db:
        db.set_meta("schema_version", version)
    with pytest.raises(RunError, match=rf"has tables of schema '{version}'; this samplescope reads schemas 1 to 2"):
        samplescope.open_run(run_path)
    with RunDatabase(run_path / layout.DATABASE, writable=True) as db:  # a writer rewrites its own version
        db.set_meta("schema_version", "2")
    samplescope.open_run(run_path).close()

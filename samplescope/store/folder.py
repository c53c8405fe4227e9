"""Run folders written atomically: build in a temporary sibling, then rename into place.

A killed job leaves at most a ``.<name>.tmp-<pid>-*`` (or, killed mid-swap, a
``.<name>.old-<pid>-*``) folder behind, never a half-written or damaged run. The
next write to the same folder removes those whose writer is dead or that are
older than :data:`STALE_AFTER_S` (so two jobs running side by side never delete
each other's work); an ``.old`` copy whose run went missing is put back instead.

Before it starts, a write checks that the disk has room for it, and a full disk
(or any other OSError) during the write ends in a :class:`RunError` that names
the folder, with the previous version left as it was.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from samplescope.errors import RunError
from samplescope.store import layout
from samplescope.store.layout import ANNOTATIONS, RUN_JSON

log = logging.getLogger(__name__)

#: a leftover temporary copy this old is removed even when its writer's pid is alive (pids get reused)
STALE_AFTER_S = 6 * 3600
#: free space a write always asks for on top of its estimate (metadata, journals, a small report)
MIN_FREE_BYTES = 1 << 20
#: errnos that mean "the disk is full" (ENOSPC, EDQUOT: over quota, EFBIG: file too large)
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@contextmanager
def atomic_folder(
    final: Path, overwrite: bool = False, start_from: Path | None = None, needed: int | None = None
) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``final`` when the block succeeds.

    ``start_from`` copies an existing folder into the temporary one first (to
    add to a run without touching the original until the end). ``needed`` is
    the bytes the block will write; by default as much as ``final`` holds now
    (a new version is about the size of the old), so adding to a run in place
    asks for twice its size: the copy and the new version.

    Adding to a run in place (``start_from`` is ``final``: ``analyze``) keeps the user's
    annotations (tags, selections) as they are at the moment of the swap, so tags
    written while the job ran are not lost.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise RunError(
            f"Output folder {final} already exists; pass --overwrite to replace it or choose another --out."
        )
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_copies(final)
        copy = folder_bytes(start_from) if start_from is not None else 0
        require_free_space(parent, copy + (folder_bytes(final) if needed is None else needed), final.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=parent))
    except OSError as exc:
        raise RunError(f"Cannot write to {parent}: {exc.strerror}. Choose a writable --out folder.") from exc
    try:
        with disk_errors(parent, final.name):
            if start_from is not None:
                shutil.copytree(start_from, tmp, dirs_exist_ok=True)
            yield tmp
            in_place = start_from is not None and Path(start_from).resolve() == final.resolve()
            _carry_and_swap(tmp, final, (ANNOTATIONS,) if in_place else ())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the swap succeeded


@contextmanager
def scratch_folder(final: Path) -> Iterator[Path]:
    """A private folder beside ``final`` for a job's large intermediate files, removed at the end.

    ``analyze`` memory-maps its latent matrix, kNN graph and IVF index there (the kernel may
    drop those pages; the process's own memory stays flat), then places the files into the
    new version of the run with :func:`place_file` (hard links: no second write). It is named
    like a temporary copy (``.<name>.tmp-<pid>-scratch-*``), so a job killed before its end
    leaves nothing that the next write to the run does not remove.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-scratch-", dir=final.parent))
    except OSError as exc:
        raise RunError(f"Cannot write to {final.parent}: {exc.strerror}. Choose a writable folder.") from exc
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def mapped_array(path: Path, shape: tuple[int, ...], dtype: Any) -> Any:
    """A new memory-mapped ``.npy`` (numpy's ``open_memmap``) whose blocks are allocated now.

    A sparse file would get its blocks only when the pages are written back, and a full disk
    then kills the process with SIGBUS; allocated up front, a full disk is an OSError here
    (ENOSPC), which :func:`disk_errors` turns into its one-line message.
    """
    import numpy as np

    array = np.lib.format.open_memmap(path, "w+", dtype, shape)
    if array.nbytes:
        with open(path, "r+b") as f:
            allocate(f.fileno(), os.fstat(f.fileno()).st_size)
    return array


def allocate(fileno: int, size: int) -> None:
    """Give the open file's first ``size`` bytes their disk blocks now (see :func:`mapped_array`):
    a full disk raises OSError (ENOSPC) here; a file system without fallocate keeps a sparse file."""
    if size <= 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fileno, 0, size)
    except OSError as exc:
        if exc.errno in _FULL:
            raise
        # EOPNOTSUPP / EINVAL: a file system without fallocate keeps the sparse file


def place_file(src: Path, dst: Path) -> None:
    """Put ``src``'s content at ``dst`` atomically: a hard link when both lie on one file system,
    else a copy; ``dst`` is replaced in one rename either way."""
    src, dst = Path(src), Path(dst)
    part = dst.with_name(f".{dst.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        try:
            os.link(src, part)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(src, part)
        os.replace(part, dst)
    finally:
        part.unlink(missing_ok=True)


def _carry_and_swap(tmp: Path, final: Path, carry: tuple[str, ...]) -> None:
    """Copy ``final``'s ``carry`` subfolders into ``tmp`` as they are now, then swap.

    Each carried folder's ``.lock`` (the one its writers flock) is held from the copy
    until after the swap: a writer waits, then writes into the new folder.
    """
    import fcntl

    held = []
    try:
        for name in carry:
            src = final / name
            if not src.is_dir():
                continue
            fd = os.open(src / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            held.append(fd)
            shutil.rmtree(tmp / name, ignore_errors=True)
            shutil.copytree(src, tmp / name)
        _swap_into_place(tmp, final)
    finally:
        for fd in held:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _swap_into_place(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.replace(tmp, final)
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.replace(final, old)
    try:
        os.replace(tmp, final)
    except OSError:
        os.replace(old, final)  # put the previous run back
        raise
    shutil.rmtree(old, ignore_errors=True)


# -- leftovers of killed jobs ---------------------------------------------------


def remove_stale_copies(final: Path, now: float | None = None) -> list[Path]:
    """Remove the ``.<name>.tmp-*`` and ``.<name>.old-*`` siblings of ``final`` that a dead job left.

    A copy counts as stale when the pid in its name is not running, or when it is
    older than :data:`STALE_AFTER_S` (copies of older versions carry no pid and go
    by age alone). When ``final`` itself is missing, a stale ``.old`` copy is the
    previous run of a swap that was cut short, and is renamed back instead.
    Returns the paths removed or restored.
    """
    final = Path(final)
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.(tmp|old)-(?:(\d+)-)?")
    now = time.time() if now is None else now
    done: list[Path] = []
    try:
        siblings = sorted(final.parent.iterdir())
    except OSError:
        return done
    for path in siblings:
        match = pattern.match(path.name)
        if match is None or not path.is_dir() or path.is_symlink():
            continue
        pid = int(match.group(2)) if match.group(2) else None
        try:
            age = now - path.stat().st_mtime
        except OSError:
            continue
        if age < STALE_AFTER_S and (pid is None or pid == os.getpid() or _alive(pid)):
            continue
        if match.group(1) == "old" and not final.exists():
            log.warning("putting back %s as %s (an earlier job stopped while swapping it)", path, final)
            os.replace(path, final)
        else:
            log.info("removing %s, left by a job that stopped (pid %s)", path, pid)
            shutil.rmtree(path, ignore_errors=True)
        done.append(path)
    return done


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError:
        return False
    return True


# -- disk space -------------------------------------------------------------------


def folder_bytes(path: Path | None) -> int:
    """Bytes of the files under ``path`` (0 when it does not exist); links are not followed."""
    if path is None or not Path(path).exists():
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def require_free_space(folder: Path, needed: int, what: str) -> None:
    """Raise RunError when ``folder``'s disk has less than ``needed`` (+ a margin) bytes free."""
    needed = int(needed) + MIN_FREE_BYTES
    free = free_bytes(folder)
    if free < needed:
        raise RunError(
            f"Not enough free space in {folder} to write {what}: about {needed:,} bytes needed, {free:,} free; "
            "free some space on that disk (or write to another folder) and run again."
        )


@contextmanager
def disk_errors(folder: Path, what: str) -> Iterator[None]:
    """Turn a full disk or a failed write inside the block into a one-line RunError naming ``folder``.

    Libraries that write for us do not all raise OSError on a full disk (torch raises
    RuntimeError, DuckDB its own IOException), so any other error raised while the
    disk is all but full is reported as a full disk too.
    """
    try:
        yield
    except RunError:
        raise
    except OSError as exc:
        if exc.errno in _FULL:
            raise _full_disk(folder, what, exc) from exc
        raise RunError(
            f"Cannot write {what} in {folder}: {exc.strerror or _first_line(exc)}; earlier results are intact; "
            "make the folder writable and run again."
        ) from exc
    except Exception as exc:
        if _nearly_full(folder):
            raise _full_disk(folder, what, exc) from exc
        raise


def _nearly_full(folder: Path) -> bool:
    try:
        return free_bytes(folder) < MIN_FREE_BYTES
    except OSError:
        return False


def _full_disk(folder: Path, what: str, exc: BaseException) -> RunError:
    try:
        free = f"{free_bytes(folder):,} bytes free"
    except OSError:
        free = "free space unknown"
    return RunError(
        f"The disk is full: writing {what} in {folder} failed ({free}; {type(exc).__name__}: {_first_line(exc)}); "
        "earlier results are intact; free some space on that disk and run again."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# -- run.json ------------------------------------------------------------------------


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; RunError when it is missing, unreadable, or not an object."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise RunError(f"{path} is missing; this folder is not a complete samplescope run.") from exc
    except OSError as exc:
        raise RunError(f"Cannot read {path}: {exc.strerror or exc}; check its permissions.") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"not valid JSON ({exc})"
        raise RunError(f"{path} is {reason}; the run is damaged, train it again.") from exc
    if not isinstance(data, dict):
        raise RunError(
            f"{path} holds a JSON {type(data).__name__}, not an object; the run is damaged, train it again."
        )
    return data


#: what every run.json has, and the type each holds
_RUN_KEYS: dict[str, type] = {"integration": dict, "model": dict, "subsets": dict, "input_shape": list}


def read_run_info(path: Path) -> dict[str, Any]:
    """The run.json of the run folder ``path``, checked for the keys a run cannot open without."""
    file = Path(path) / RUN_JSON
    info = read_json(file)
    for key, kind in _RUN_KEYS.items():
        if not isinstance(info.get(key), kind):
            found = "missing" if key not in info else f"a {type(info[key]).__name__}"
            raise RunError(
                f"{file} has no valid {key!r} ({found}, expected a JSON "
                f"{'object' if kind is dict else 'array'}); the run is damaged, train it again."
            )
    version = info.get("layout_version", 1)  # runs from before the field are layout 1
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= layout.LAYOUT_VERSION:
        raise RunError(
            f"{file} has layout_version {version!r}; this samplescope reads layouts 1 to "
            f"{layout.LAYOUT_VERSION}: upgrade samplescope to open it (`pip install -U samplescope`)."
        )
    classes = info["integration"].get("classes")
    classless = (info.get("task") or {}).get("name") == "regression"  # a regression run has no classes
    if not isinstance(classes, list) or (not classes and not classless):
        raise RunError(f"{file} lists no integration classes; the run is damaged, train it again.")
    analysis = info.get("analysis")
    if analysis is not None and not isinstance(analysis, dict):
        raise RunError(
            f"{file}: 'analysis' is a {type(analysis).__name__}, not an object; "
            f"analyse the run again (`samplescope analyze {path}`)."
        )
    return info


def is_run(path: Path) -> bool:
    return (Path(path) / RUN_JSON).is_file()

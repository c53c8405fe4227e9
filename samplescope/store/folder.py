"""Run folders written atomically: build in a temporary sibling, then rename into place.

A killed job leaves at most a ``.<name>.tmp-*`` folder behind (ignored and
cleaned up next time) and never a half-written or damaged run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from samplescope.errors import RunError
from samplescope.store.layout import RUN_JSON


@contextmanager
def atomic_folder(final: Path, overwrite: bool = False, start_from: Path | None = None) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``final`` when the block succeeds.

    ``start_from`` copies an existing folder into the temporary one first (to
    add to a run without touching the original until the end).
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise RunError(
            f"Output folder {final} already exists; pass --overwrite to replace it or choose another --out."
        )
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=parent))
    except OSError as exc:
        raise RunError(f"Cannot write to {parent}: {exc.strerror}. Choose a writable --out folder.") from exc
    try:
        if start_from is not None:
            shutil.copytree(start_from, tmp, dirs_exist_ok=True)
        yield tmp
        _swap_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_into_place(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.replace(tmp, final)
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    os.replace(final, old)
    try:
        os.replace(tmp, final)
    except OSError:
        os.replace(old, final)  # put the previous run back
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise RunError(f"{path} is missing; this folder is not a complete samplescope run.") from exc
    except json.JSONDecodeError as exc:
        raise RunError(f"{path} is not valid JSON ({exc}); the run is damaged, train it again.") from exc


def is_run(path: Path) -> bool:
    return (Path(path) / RUN_JSON).is_file()

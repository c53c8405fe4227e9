"""Tags and saved selections: the user's decisions about samples, stored in the run folder.

They live in ``RUN/annotations/``, apart from the analysis, so re-analysing a run
keeps them (the analysis's folder swap carries them over, see store/folder.py):

    annotations/
      .lock                 held (flock) by every writer and by a folder swap
      tags/<hex>.npy        one file per tag: its sample ids, sorted, unique, int64
      selections/<hex>.npz  one file per saved selection: ``ids`` and ``meta`` (JSON text)

``<hex>`` is the UTF-8 name in hexadecimal, so any name ("relabel:7", "needs review")
is a safe file name. Every write takes the lock, writes a temporary file and renames
it into place: concurrent writers (several browser tabs, a notebook) serialise and
lose nothing, and a reader never sees half a file. Files are read with
``allow_pickle=False``: nothing in them can run.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samplescope.errors import ConflictError, NotFoundError, ParameterError, RunError
from samplescope.store import layout

MAX_NAME = 100
LOCK = ".lock"


@dataclass(frozen=True)
class Selection:
    name: str
    note: str
    created: str
    ids: np.ndarray  # (n,) int64, sorted

    def __len__(self) -> int:
        return len(self.ids)


def check_name(name: Any, what: str) -> str:
    """A tag or selection name: 1..100 printable characters, not only spaces."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or not name.isprintable():
        raise ParameterError(
            f"{what} name {name!r} is not allowed; use 1 to {MAX_NAME} printable characters "
            "(any word, e.g. 'mislabeled', 'relabel:7', 'exclude')."
        )
    return name


def _encode(name: str) -> str:
    return name.encode("utf-8").hex()


def _decode(stem: str) -> str | None:
    try:
        return bytes.fromhex(stem).decode("utf-8")
    except ValueError:
        return None  # a file that is not ours


class Annotations:
    """The tags and selections of the run folder ``run_path`` with ``n_samples`` samples."""

    def __init__(self, run_path: str | Path, n_samples: int) -> None:
        self.root = Path(run_path) / layout.ANNOTATIONS
        self.n = int(n_samples)

    # -- plumbing ----------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the annotations lock (writers, and a folder swap that carries them over)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise RunError(
                f"Cannot write tags or selections in {self.root} ({exc.strerror}); the run folder is "
                "read-only here: copy the run somewhere writable."
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self, path: Path, save) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                save(f)
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise RunError(f"Cannot write {path} ({exc.strerror}); nothing was changed.") from exc

    def _ids(self, sample_ids: Any) -> np.ndarray:
        ids = np.asarray(list(sample_ids) if not isinstance(sample_ids, np.ndarray) else sample_ids)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ParameterError(f"sample ids must be integers, got {ids.dtype} values like {ids.flat[0]!r}.")
        ids = np.unique(ids.astype(np.int64, copy=False))
        bad = ids[(ids < 0) | (ids >= self.n)]
        if bad.size:
            raise NotFoundError(f"Sample id {int(bad[0])} does not exist; ids run from 0 to {self.n - 1}.")
        return ids

    # -- tags --------------------------------------------------------------

    def _tag_path(self, name: str) -> Path:
        return self.root / layout.ANNOTATION_TAGS / f"{_encode(name)}.npy"

    def tags(self) -> dict[str, np.ndarray]:
        """Every tag and its sorted sample ids."""
        out = {}
        for path in sorted((self.root / layout.ANNOTATION_TAGS).glob("*.npy")):
            name = _decode(path.stem)
            if name is not None:
                out[name] = self._load_ids(path)
        return dict(sorted(out.items()))

    def tagged(self, name: str) -> np.ndarray:
        path = self._tag_path(check_name(name, "tag"))
        if not path.exists():
            raise NotFoundError(f"No tag {name!r}; this run's tags are {sorted(self.tags())}.")
        return self._load_ids(path)

    def tag(self, sample_ids: Any, name: str) -> int:
        """Add ``name`` to the samples; returns how many samples carry it now."""
        path = self._tag_path(check_name(name, "tag"))
        ids = self._ids(sample_ids)
        with self.locked():
            before = self._load_ids(path) if path.exists() else np.empty(0, np.int64)
            after = np.union1d(before, ids)
            self._write(path, lambda f: np.save(f, after))
        return len(after)

    def untag(self, name: str, sample_ids: Any = None) -> int:
        """Remove ``name`` from the samples (from all of them when ``sample_ids`` is None); how many keep it."""
        path = self._tag_path(check_name(name, "tag"))
        with self.locked():
            if not path.exists():
                raise NotFoundError(f"No tag {name!r}; this run's tags are {sorted(self.tags())}.")
            if sample_ids is None:
                path.unlink()
                return 0
            after = np.setdiff1d(self._load_ids(path), self._ids(sample_ids))
            self._write(path, lambda f: np.save(f, after))
        return len(after)

    def rename_tag(self, old: str, new: str) -> None:
        self._rename(self._tag_path(check_name(old, "tag")), self._tag_path(check_name(new, "tag")), old, new, "tag")

    # -- selections ----------------------------------------------------------

    def _selection_path(self, name: str) -> Path:
        return self.root / layout.ANNOTATION_SELECTIONS / f"{_encode(name)}.npz"

    def selections(self) -> list[Selection]:
        out = []
        for path in sorted((self.root / layout.ANNOTATION_SELECTIONS).glob("*.npz")):
            if _decode(path.stem) is not None:
                out.append(self._load_selection(path))
        return sorted(out, key=lambda s: s.name)

    def selection(self, name: str) -> Selection:
        path = self._selection_path(check_name(name, "selection"))
        if not path.exists():
            raise NotFoundError(
                f"No saved selection {name!r}; this run has {[s.name for s in self.selections()]}."
            )
        return self._load_selection(path)

    def save_selection(
        self, name: str, sample_ids: Any, note: str = "", overwrite: bool = False, append: bool = False
    ) -> Selection:
        """Save ``sample_ids`` as the selection ``name``; ``append`` adds them to the saved one
        (its note and date kept), so a selection too large for one request is saved in parts."""
        path = self._selection_path(check_name(name, "selection"))
        if not isinstance(note, str) or len(note) > 10_000:
            raise ParameterError("note must be text of at most 10,000 characters.")
        ids = self._ids(sample_ids)
        meta = json.dumps({"name": name, "note": note, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        with self.locked():
            if append:
                if not path.exists():
                    raise NotFoundError(f"No saved selection {name!r} to add to; save its first part without append.")
                old = self._load_selection(path)
                ids = np.union1d(old.ids, ids)
                meta = json.dumps({"name": name, "note": old.note, "created": old.created})
            elif path.exists() and not overwrite:
                raise ConflictError(f"A selection named {name!r} exists; pick another name or overwrite it.")
            self._write(path, lambda f: np.savez(f, ids=ids, meta=np.array(meta)))
        return self._load_selection(path)

    def delete_selection(self, name: str) -> None:
        path = self._selection_path(check_name(name, "selection"))
        with self.locked():
            if not path.exists():
                raise NotFoundError(f"No saved selection {name!r}.")
            path.unlink()

    def rename_selection(self, old: str, new: str) -> None:
        old_path = self._selection_path(check_name(old, "selection"))
        new_path = self._selection_path(check_name(new, "selection"))
        with self.locked():
            if not old_path.exists():
                raise NotFoundError(f"No saved selection {old!r}.")
            if new_path.exists():
                raise ConflictError(f"A selection named {new!r} exists; pick another name.")
            sel = self._load_selection(old_path)
            meta = json.dumps({"name": new, "note": sel.note, "created": sel.created})
            self._write(new_path, lambda f: np.savez(f, ids=sel.ids, meta=np.array(meta)))
            old_path.unlink()

    # -- reading -------------------------------------------------------------

    def _rename(self, old: Path, new: Path, old_name: str, new_name: str, what: str) -> None:
        with self.locked():
            if not old.exists():
                raise NotFoundError(f"No {what} {old_name!r}.")
            if new.exists():
                raise ConflictError(f"A {what} named {new_name!r} exists; pick another name.")
            os.replace(old, new)

    def _load_ids(self, path: Path) -> np.ndarray:
        try:
            ids = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise RunError(f"{path} cannot be read ({exc}); delete it to drop that tag.") from exc
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise RunError(f"{path} is not a list of sample ids; delete it to drop that tag.")
        return ids.astype(np.int64, copy=False)

    def _load_selection(self, path: Path) -> Selection:
        try:
            with np.load(path, allow_pickle=False) as z:
                ids, meta = z["ids"].astype(np.int64), json.loads(str(z["meta"]))
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise RunError(f"{path} cannot be read ({exc}); delete it to drop that selection.") from exc
        return Selection(name=str(meta.get("name")), note=str(meta.get("note", "")),
                         created=str(meta.get("created", "")), ids=ids)

"""The run folder's cache of on-demand heatmaps: ``heatmaps/``, one ``.npy`` per (method, sample, target).

Bounded: at most ``max_bytes`` of heatmaps in all (128 MiB by default, about 40,000
28x28 maps). When a write goes over the cap, the least recently used files are removed
until the cache is at 90% of it (reads refresh a file's time). Writes are atomic (a
hidden temporary file renamed into place); a folder that cannot be written (read-only,
full disk) is no error, the heatmap is just not kept.

    cache = for_folder(run.path / layout.HEATMAP_CACHE)
    value = cache.get("gradcam", 12, 3)          # None when absent or unreadable
    cache.put("gradcam", 12, 3, value)           # may evict the oldest files
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from samplescope.store import layout

log = logging.getLogger(__name__)

#: the cap of one run folder's heatmap cache, in bytes
DEFAULT_MAX_BYTES = 128 * 2**20
#: after an eviction the cache holds at most this share of the cap
LOW_WATER = 0.9
#: hidden temporary files older than this (seconds) are left over from a killed write
STALE_TMP_SECONDS = 3600.0


class HeatmapCache:
    """Heatmaps of one run folder on disk, at most ``max_bytes``, least recently used evicted."""

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes={max_bytes} must be positive")
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._total: int | None = None  # bytes on disk, counted at the first write

    def path(self, method: str, sample_id: int, target: int) -> Path:
        return self.folder / layout.HEATMAP_CACHE_FILE.format(method=method, sample=int(sample_id), target=int(target))

    def get(self, method: str, sample_id: int, target: int) -> np.ndarray | None:
        """The stored heatmap, or None; a damaged file is removed."""
        path = self.path(method, sample_id, target)
        try:
            value = np.load(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as e:
            log.debug("damaged cached heatmap %s removed: %s", path, e)
            self._remove(path)
            return None
        try:
            os.utime(path)  # most recently used now
        except OSError:
            pass
        return value

    def put(self, method: str, sample_id: int, target: int, value: np.ndarray) -> None:
        """Store ``value`` atomically, then evict the oldest files if over the cap."""
        path = self.path(method, sample_id, target)
        try:
            self.folder.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".npy")
            with os.fdopen(fd, "wb") as f:
                np.save(f, value)
            os.replace(tmp, path)
            size = path.stat().st_size
        except OSError as e:  # read-only run folder, full disk: the in-memory cache still works
            log.debug("heatmap not cached on disk at %s: %s", path, e)
            return
        with self._lock:
            self._total = self._scan_total() if self._total is None else self._total + size
            if self._total > self.max_bytes:
                self._evict()

    def usage(self) -> tuple[int, int]:
        """``(files, bytes)`` of heatmaps on disk now."""
        files = self._files()
        return len(files), sum(size for _, size, _ in files)

    # --- internals --------------------------------------------------------------------------

    def _files(self) -> list[tuple[float, int, Path]]:
        """``(mtime, size, path)`` of every cached heatmap; removes stale temporary files."""
        out = []
        now = time.time()
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return []
        for entry in entries:
            try:
                st = entry.stat()
            except OSError:
                continue  # removed meanwhile (another process evicting)
            if entry.name.startswith("."):
                if now - st.st_mtime > STALE_TMP_SECONDS:
                    self._remove(Path(entry.path))
                continue
            if entry.name.endswith(".npy"):
                out.append((st.st_mtime, st.st_size, Path(entry.path)))
        return out

    def _scan_total(self) -> int:
        return sum(size for _, size, _ in self._files())

    def _evict(self) -> None:
        """Remove the least recently used files until at most ``LOW_WATER`` of the cap is used."""
        files = sorted(self._files())
        total = sum(size for _, size, _ in files)
        goal = int(self.max_bytes * LOW_WATER)
        removed = 0
        for _, size, path in files:
            if total <= goal:
                break
            if self._remove(path):
                total -= size
                removed += 1
        self._total = total
        log.debug("heatmap cache %s: %d files evicted, %d bytes kept", self.folder, removed, total)

    @staticmethod
    def _remove(path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as e:
            log.debug("could not remove %s: %s", path, e)
            return False
        return True


_caches: dict[Path, HeatmapCache] = {}
_caches_lock = threading.Lock()


def for_folder(folder: Path, max_bytes: int | None = None) -> HeatmapCache:
    """The one cache object of ``folder`` in this process (so its byte count is shared);
    ``max_bytes`` defaults to ``DEFAULT_MAX_BYTES``."""
    max_bytes = max_bytes or DEFAULT_MAX_BYTES
    key = Path(folder).absolute()
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None or cache.max_bytes != max_bytes:
            cache = _caches[key] = HeatmapCache(key, max_bytes)
        return cache

"""Noticing a re-analysis of the run while it is served.

``samplescope analyze`` writes a run into a sibling folder and renames it into place, so a
served run can change under the server. :class:`ServedRun` looks at ``run.json`` (its inode,
size and mtime; one ``stat``) at most every ``Settings.reload_interval`` seconds, and when
its contents changed it opens the run again and serves the new one: every request gets
the state current when it arrived, whole (a request never mixes two analyses).

The old run's database is closed *before* the new one opens: DuckDB keeps one database
instance per file path in a process, so opening the same path while the old connection
lives would hand back the old (renamed-away) file. A request still reading the old run
in that instant fails once, with a 400 naming the re-analysis; the next one is answered
from the new analysis.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from samplescope.errors import RunError
from samplescope.server.settings import Settings
from samplescope.server.state import Lanes, ServerState, check_servable
from samplescope.store import layout

if TYPE_CHECKING:
    from samplescope.run import Run

log = logging.getLogger(__name__)

class ServedRun:
    """The run a server serves now; :meth:`current` reopens it after a re-analysis."""

    def __init__(self, run: Run, settings: Settings) -> None:
        self.settings = settings
        self.state = ServerState(run, settings)
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._stamp = _stamp(run.path)
        self._text = _read(run.path)
        self.reloads = 0
        self.problem: str | None = None  # why the last reload failed, while the old run serves

    @property
    def run(self) -> Run:
        return self.state.run

    @property
    def path(self) -> Path:
        return Path(self.state.run.path)

    def current(self) -> ServerState:
        """The state to answer a request with (reopened first when run.json changed)."""
        now = time.monotonic()
        if now - self._checked < self.settings.reload_interval and not self.problem:
            return self.state
        with self._lock:
            if now - self._checked >= self.settings.reload_interval:
                self._checked = now
                stamp = _stamp(self.path)
                if stamp != self._stamp or self.problem:
                    self._reload(stamp)
        if self.problem:
            raise RunError(self.problem)
        return self.state

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        text = _read(self.path)
        if stamp is None or text is None:  # mid-swap, or removed: keep serving what we have
            return
        if text == self._text:
            self._stamp = stamp
            return
        from samplescope.run import open_run

        old = self.state
        s = self.settings
        old.run.close()  # (a Run given to create_app too: its folder now holds another analysis)
        try:
            run = open_run(self.path, trust=s.trust, integration=s.integration, device=s.device)
            check_servable(run)
            state = ServerState(run, s, Lanes(old.heatmap_lane, old.compute_lane))
        except (RunError, OSError, ValueError) as exc:
            self.problem = (
                f"run {self.path} was analysed again but could not be reopened ({exc}); "
                "wait for the analysis to finish, or restart `samplescope serve`"
            )
            log.warning("%s", self.problem)
            return
        self.state, self._stamp, self._text, self.problem = state, stamp, text, None
        self.reloads += 1
        log.warning("run %r was analysed again; serving the new analysis", run.name)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = (path / layout.RUN_JSON).stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _read(path: Path) -> str | None:
    try:
        text = (path / layout.RUN_JSON).read_text()
        json.loads(text)
    except (OSError, ValueError):
        return None
    return text

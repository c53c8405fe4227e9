"""The one settings object the server reads."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

from samplescope.errors import ParameterError
from samplescope.store import map_queries

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


#: the numeric settings' ranges: (lowest, highest, whether it is an integer)
_RANGES: dict[str, tuple[float, float, bool]] = {
    "prewarm_delay": (0, float("inf"), False),
    "image_max_age": (0, float("inf"), True),
    "heatmap_cache_size": (0, float("inf"), True),
    "row_cache_bytes": (0, float("inf"), True),
    "read_threads": (0, 64, True),
    "pool_threads": (1, 1024, True),
    "switch_interval": (1e-6, 1.0, False),
    "heavy_workers": (1, 256, True),
    "heavy_cpus": (0, 4096, True),
    "heavy_nice": (0, 19, True),
    "heavy_queue": (0, float("inf"), True),
    "heavy_timeout": (1e-3, float("inf"), False),
    "map_full_max": (1, float("inf"), True),
    "map_overview_points": (1, float("inf"), True),
    "reload_interval": (0, float("inf"), False),
}



@dataclasses.dataclass(frozen=True)
class Settings:
    """How to serve a run.

    ``prewarm`` loads the heavy libraries (torch, captum, faiss) in a background
    thread after startup, so the first heatmap or similars request is quick;
    the server itself starts without them.
    """

    run_path: Path | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    prewarm: bool = True
    #: run the run's own code (integration file, model class) even when it is not in the trust list
    trust: bool = False
    #: an integration (file or built-in name) the user names, used instead of the one the run records
    integration: str | None = None
    #: where the model runs for heatmaps: auto (CUDA when there is one), cpu, cuda, cuda:N, mps
    device: str = "auto"
    #: seconds after startup before prewarming starts (lets the first page load go first)
    prewarm_delay: float = 2.0
    #: seconds browsers may keep images and heatmaps (they never change within a run)
    image_max_age: int = 24 * 3600
    #: entries kept in the in-memory heatmap cache
    heatmap_cache_size: int = 2048
    #: names the server answers to besides loopback names and ``host`` (the Host header check)
    allowed_hosts: tuple[str, ...] = ()
    #: bytes of the samples table /api/samples/<id> keeps in memory, in blocks of 4,096 ids
    #: (server/rowcache.py; 0: every row read from the database)
    row_cache_bytes: int = 64 * 2**20
    #: threads of the read lane that answers /api/samples/<id> (server/reads.py; 0: on the event loop)
    read_threads: int = 2
    #: threads of the pool the other sync routes share (anyio's default is 40: on two cores
    #: they only queued for the interpreter lock instead of for a thread; bench/serve_speed.py
    #: --reference-settings pool_threads=40,switch_interval=0.005 compares)
    pool_threads: int = 8
    #: seconds a thread may hold the interpreter lock while another waits (Python's default is
    #: 0.005): the event loop and the read lane get it back sooner
    switch_interval: float = 0.001
    #: heavy requests (heatmaps; aggregates and similars of a set) computed at once, per kind
    heavy_workers: int = 1
    #: heavy work in worker processes (pinned, lower priority, killed past the timeout) rather
    #: than threads of the server's process, whose interpreter lock the cheap routes need
    heavy_processes: bool = True
    #: cores the heavy worker processes may use (the last ones; 0: any)
    heavy_cpus: int = 1
    #: how much lower the heavy workers' scheduling priority is (``nice``; 0: the same)
    heavy_nice: int = 10
    #: heavy requests of a kind that may wait for a worker; more are answered 503 at once
    heavy_queue: int = 32
    #: seconds a heavy request may take, waiting included, before it is answered 503
    heavy_timeout: float = 30.0
    #: runs of at most this many samples send their whole map; larger ones send an overview
    #: sample and, when the page zooms in, every sample of its viewport
    map_full_max: int = map_queries.FULL_MAX
    #: points in the overview of a larger run (a density-aware sample, see store/map_queries.py)
    map_overview_points: int = map_queries.OVERVIEW_POINTS
    #: seconds between checks of run.json for a new analysis (0: on every request)
    reload_interval: float = 2.0
    #: an earlier run to compare the served one with (``serve RUN_B --compare RUN_A``: the Compare view)
    compare: Path | None = None

    def __post_init__(self) -> None:
        for name, (low, high, integer) in _RANGES.items():
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or (integer and not isinstance(value, int)) or not low <= value <= high:
                kind = "an integer" if integer else "a number"
                upper = " up" if high == float("inf") else f" to {high}"
                raise ParameterError(f"Settings.{name}={value!r} is not allowed; use {kind} from {low}{upper}.")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

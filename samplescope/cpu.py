"""How this process shares the machine's CPU cores with torch's OpenMP threads.

PyTorch's CPU build uses GNU OpenMP, whose idle threads spin for a while before they sleep.
On a machine where other jobs hold cores, a spinning thread waits for a partner thread that
is not scheduled, at every operation: on the 2-core development machine at load 15-20, one
training step of the fast CNN took 2.0-2.1 s with two threads against 0.41-0.43 s with one
(a 5x loss), and 0.36-0.42 s with two threads that sleep instead of spinning
(``OMP_WAIT_POLICY=PASSIVE``). On an idle machine spinning is the faster choice, so the
policy is set only when the machine is busy, and never over the user's own setting. It must
be decided before torch loads (OpenMP reads it once), so the command line calls
:func:`settle_openmp` first.
"""

from __future__ import annotations

import os
import sys
import time


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def busy_cores(seconds: float = 0.2) -> float:
    """Cores that other processes keep busy now, from ``/proc/stat`` over ``seconds``.

    The load average would lag: right after a ``pip install`` it still says 1 on an idle
    machine. Off Linux the 1-minute load average stands in.
    """
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0
    total = max(1, total1 - total0)
    return (os.cpu_count() or 1) * (1.0 - (idle1 - idle0) / total)


def settle_openmp(env: dict[str, str] | None = None, busy: float | None = None) -> str | None:
    """Let idle OpenMP threads sleep when other jobs hold half a core or more; returns the
    policy set, or ``None``.

    torch starts one thread per core, so any such job leaves one of its threads without a
    core. Nothing changes when the user set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``
    themselves, when torch is already loaded (too late for this process), or on an idle
    machine. ``busy``: busy cores, measured when not given.
    """
    env = os.environ if env is None else env
    if "OMP_WAIT_POLICY" in env or "GOMP_SPINCOUNT" in env or "torch" in sys.modules:
        return None
    if (busy_cores() if busy is None else busy) < 0.5:
        return None
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return "PASSIVE"

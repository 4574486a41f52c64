"""Hold a process to a share of one CPU with a CFS bandwidth quota (a cgroup of its own).

Figure I asks for throughput "when each instance has a core". On a machine with two cores
that also runs Redis and the load, two instances pinned to whole cores leave those nothing of
their own, and the figure measures the machine. Holding each instance to a fixed share of its
core (in both setups alike) leaves the rest of the machine to Redis and the load. Needs root
and a cgroup `cpu` controller (v2's `cpu.max` or v1's `cpu.cfs_quota_us`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 10_000
"""A short period: a throttled instance waits at most a few ms, not most of 100 ms."""


def _hierarchy() -> tuple[Path, bool] | None:
    """Where cpu cgroups are made, and whether it is cgroup v2; None if nowhere writable."""
    controllers = ROOT / "cgroup.subtree_control"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        place = ROOT, True
    elif (ROOT / "cpu" / "cpu.cfs_quota_us").exists():
        place = ROOT / "cpu", False
    else:
        return None
    return place if os.access(place[0], os.W_OK) else None


def unavailable() -> str | None:
    """Why quotas cannot be set here, or None if they can."""
    if _hierarchy() is None:
        return "no writable cgroup cpu controller (needs root)"
    return None


class CpuQuota:
    """A cgroup allowing `share` of one CPU (0 < share <= 1) to the processes added to it."""

    def __init__(self, name: str, share: float) -> None:
        place = _hierarchy()
        if place is None:
            raise RuntimeError(f"cannot set a CPU quota: {unavailable()}")
        root, v2 = place
        self.path = root / name
        self.path.mkdir(exist_ok=True)
        quota = max(1000, round(PERIOD_US * share))
        if v2:
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """Deletes the cgroup; its processes must have exited (or it stays, harmlessly)."""
        with contextlib.suppress(OSError):
            self.path.rmdir()

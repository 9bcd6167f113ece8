"""The driver's heartbeat on a SLURM run, and how its jobs notice that it is gone.

Locally every child dies with the driver (PDEATHSIG). SLURM jobs cannot: a driver killed
with SIGKILL, or a lost login node, would leave servers holding GPUs until their time
limit. So the driver touches ``state/driver.alive`` on the shared run directory, and each
job watches the file's mtime. Only *changes* of the mtime are compared, on the job's own
monotonic clock, so the nodes' clocks need not agree with the file server's.
"""

from __future__ import annotations

import time
from pathlib import Path

BEAT_S = 5.0  # the driver touches the file at most this often


class Beat:
    """Driver side: ``touch()`` from the follow loop; writes at most every BEAT_S."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last = float("-inf")

    def touch(self) -> None:
        now = time.monotonic()
        if now - self._last < BEAT_S:
            return
        self._last = now
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()  # an existing file gets a new mtime


class Watch:
    """Job side: ``orphaned()`` is true once the heartbeat has not changed for ``timeout_s``."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path, self.timeout_s = path, timeout_s
        self._seen = self._mtime()
        self._changed_at = time.monotonic()

    def _mtime(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    def orphaned(self) -> bool:
        if self.timeout_s <= 0:
            return False
        mtime = self._mtime()
        if mtime != self._seen:
            self._seen, self._changed_at = mtime, time.monotonic()
            return False
        return time.monotonic() - self._changed_at > self.timeout_s

    def silent_s(self) -> float:
        return time.monotonic() - self._changed_at

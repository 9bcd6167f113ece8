"""One driver per run directory: ``state/driver.lock`` holds the live driver's pid and host.

A second driver on a run directory in use is refused (exit 2) with the first one's pid and
host. A lock left by a driver that died (its pid gone on this host, or not refreshed for
STALE_S on another host) is taken over.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import msgspec

from slurmgen.errors import ConfigError
from slurmgen.rundir import RunDir, write_atomic

STALE_S = 120.0  # a lock from another host not refreshed for this long is a dead driver's


class Holder(msgspec.Struct, kw_only=True):
    pid: int
    host: str
    started_at: float


def path(run: RunDir) -> Path:
    return run.state / "driver.lock"


def acquire(run: RunDir) -> Holder:
    """Take the run directory's lock, or raise ConfigError naming the live driver that holds it."""
    mine = Holder(pid=os.getpid(), host=socket.gethostname(), started_at=time.time())
    lock = path(run)
    held = _read(lock)
    if held is not None and held != mine and _alive(held, lock):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(held.started_at))
        raise ConfigError(f"run.dir={run.root} is in use by another driver: pid {held.pid} on host {held.host} "
                          f"(started {when}; {lock}). Wait for it to end, stop it (kill -INT {held.pid} on "
                          f"{held.host}), or choose another run.dir")
    write_atomic(lock, msgspec.json.encode(mine))
    if _read(lock) != mine:  # another driver took it at the same moment
        return acquire(run)
    return mine


def refresh(run: RunDir) -> None:
    """Mark the lock alive (another host judges a lock by its age)."""
    try:
        os.utime(path(run))
    except OSError:
        pass


def release(run: RunDir, mine: Holder) -> None:
    lock = path(run)
    if _read(lock) == mine:
        lock.unlink(missing_ok=True)


def _read(lock: Path) -> Holder | None:
    try:
        return msgspec.json.decode(lock.read_bytes(), type=Holder)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _alive(held: Holder, lock: Path) -> bool:
    if held.host != socket.gethostname():
        try:
            return time.time() - lock.stat().st_mtime < STALE_S
        except OSError:
            return False
    try:
        os.kill(held.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return _is_driver(held)


def _is_driver(held: Holder) -> bool:
    """The pid is still the process that wrote the lock: it started before the lock did (a pid
    reused by a later process started after)."""
    try:
        stat = Path(f"/proc/{held.pid}/stat").read_text()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return True  # no /proc: trust the pid
    ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, counted after "(comm)"
    return boot + ticks / os.sysconf("SC_CLK_TCK") <= held.started_at + 2.0

"""Disk full on the run directory: one clear message naming the path and the free space."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Callable

from slurmgen.errors import DiskFull

FULL = (errno.ENOSPC, errno.EDQUOT)
MIN_FREE = 1 << 20  # below this, a process of the run that exited is taken to have found the disk full


def is_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in FULL


def disk_full(path: Path, exc: OSError) -> DiskFull:
    try:
        usage = shutil.disk_usage(path.parent)
        space = f"{usage.free} bytes free of {usage.total} on its filesystem"
    except OSError:
        space = "free space unknown"
    return DiskFull(f"cannot write {path}: {exc.strerror or exc} ({space}); free space there, then run the "
                    "same command again: the run resumes where it stopped, every task once")


def guarded_write(path: Path, write: Callable[[], None]) -> None:
    """Run ``write``; a full disk becomes DiskFull naming ``path``."""
    try:
        write()
    except OSError as exc:
        if is_full(exc):
            raise disk_full(path, exc) from exc
        raise


def check_room(root: Path) -> None:
    """Raise DiskFull if the run directory's filesystem is (nearly) full: restarting a process
    there would only fail again (and its log could not say why)."""
    try:
        usage = shutil.disk_usage(root)
    except OSError:
        return
    if usage.free < MIN_FREE:
        raise DiskFull(f"the run directory {root} is on a full filesystem ({usage.free} bytes free of "
                       f"{usage.total}): its processes cannot write records, state or logs. Free space there, "
                       "then run the same command again: the run resumes where it stopped, every task once")

"""Disk full on the run directory: one clear message naming the path and the free space."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Callable

from slurmgen.errors import DiskFull

FULL = (errno.ENOSPC, errno.EDQUOT)


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

"""Children die with their parent: a process slurmgen starts locally gets SIGTERM
from the kernel when its parent dies, even by SIGKILL, so nothing is left behind."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For ``preexec_fn``: ask Linux to SIGTERM this child when its parent exits."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

"""A fault hook for tests: make one background path of a real process raise, once per run.

    SLURMGEN_FAULTS="hop:5,home:3,leases:2" SLURMGEN_FAULTS_DIR=/tmp/x python -m slurmgen ...

``fault("hop")`` raises ``InjectedFault`` the 5th time any process passes it, and never
again in this run: the first process to fire a point creates ``<dir>/<point>.fired``
(exclusive create), so a restarted process does not fire it a second time. Unset (the
default), ``fault`` is one dictionary test.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path


class InjectedFault(RuntimeError):
    """Raised by ``fault``: a test asked for it."""


def _plan(spec: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        point, _, nth = item.partition(":")
        out[point] = int(nth or 1)
    return out


PLAN = _plan(os.environ.get("SLURMGEN_FAULTS", ""))
_DIR = Path(os.environ.get("SLURMGEN_FAULTS_DIR", "."))
_seen: collections.Counter[str] = collections.Counter()


def fault(point: str) -> None:
    if point not in PLAN:
        return
    _seen[point] += 1
    if _seen[point] != PLAN[point]:
        return
    try:
        os.close(os.open(_DIR / f"{point}.fired", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    raise InjectedFault(f"injected fault at {point} (SLURMGEN_FAULTS)")

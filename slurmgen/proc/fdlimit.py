"""Open-file limits: every slurmgen process raises its soft ``RLIMIT_NOFILE`` to the hard limit at start.

Each LLM request in flight holds one socket (HTTP/1.1: one request per connection), in the
peer that sends it and in the server that answers it; ZeroMQ, logs and the run's files take a
few more. Linux' usual soft limit (1024) is far below what tens of thousands of tasks in
flight need, while the hard limit is usually much higher: as vLLM's server does at start, each
process lifts its soft limit to the hard one. What the hard limit cannot give, the LLM client
does not take: it opens at most ``connection_budget()`` sockets and queues further requests
(slurmgen.llm.client).
"""

from __future__ import annotations

import logging
import resource

from slurmgen.errors import ResourceLimitError

log = logging.getLogger("slurmgen.fdlimit")

RESERVE = 256  # descriptors kept for all but LLM connections: ZeroMQ sockets, logs, LMDB, the run's files
MINIMUM = RESERVE + 64  # below this a process cannot serve: refused with the limit named


def raise_nofile(minimum: int = MINIMUM) -> int:
    """Lift the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit now in force.

    Raises ``ResourceLimitError`` naming the limit if even the hard limit is below ``minimum``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # e.g. a hard limit above fs.nr_open: keep the soft one
            log.warning("cannot raise the open-file limit (RLIMIT_NOFILE) from %d to %d: %s", soft, hard, exc)
    if soft != resource.RLIM_INFINITY and soft < minimum:
        raise ResourceLimitError(
            f"the open-file limit (RLIMIT_NOFILE, `ulimit -n`) is {soft} (hard limit {hard}); slurmgen needs at "
            f"least {minimum}, plus one per LLM request in flight. Raise the hard limit (`ulimit -Hn`, "
            "/etc/security/limits.conf, or your SLURM site's limits) and run again")
    return soft


def connection_budget() -> int:
    """Sockets an LLM client of this process may open: the soft open-file limit less ``RESERVE``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(1, soft - RESERVE)

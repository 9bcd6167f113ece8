"""Which TCP ports a process may bind: any free one, or one of ``cluster.port_range``.

A site whose firewall opens only a range between nodes sets ``cluster.port_range=LO-HI``;
the driver passes it to every process in the environment (``SLURMGEN_PORT_RANGE``) and
every listening socket — ZeroMQ inboxes, the registry, LLM servers, tool pools,
``/metrics`` — binds a free port inside it.
"""

from __future__ import annotations

import errno
import os
import random
from typing import Callable, TypeVar

import zmq

from slurmgen.errors import ConfigError

ENV = "SLURMGEN_PORT_RANGE"
T = TypeVar("T")


def parse(spec: str) -> tuple[int, int] | None:
    """``"30000-30999"`` -> (30000, 30999); ``""`` -> None (any free port)."""
    if not spec:
        return None
    lo, sep, hi = spec.partition("-")
    try:
        low, high = int(lo), int(hi)
    except ValueError:
        low, high = 0, -1
    if not sep or not 1024 <= low <= high <= 65535:
        raise ConfigError(f"cluster.port_range={spec!r} must look like LO-HI with 1024 <= LO <= HI <= 65535, "
                          "e.g. 30000-30999")
    return low, high


def current() -> tuple[int, int] | None:
    return parse(os.environ.get(ENV, ""))


def bind_in_range(bind: Callable[[int], T]) -> T:
    """``bind(port)`` on a free port: 0 (the kernel picks) or, with a range, each port of it in
    random order until one is free."""
    span = current()
    if span is None:
        return bind(0)
    ports = list(range(span[0], span[1] + 1))
    random.shuffle(ports)
    for port in ports:
        try:
            return bind(port)
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
    raise OSError(errno.EADDRINUSE, f"no free port in {ENV}={span[0]}-{span[1]} (cluster.port_range): widen it")


def bind_zmq(sock: zmq.Socket, host: str) -> None:
    span = current()
    if span is None:
        sock.bind(f"tcp://{host}:0")
        return
    try:
        sock.bind_to_random_port(f"tcp://{host}", span[0], span[1] + 1, max_tries=4 * (span[1] - span[0] + 1))
    except zmq.ZMQBindError:
        raise OSError(errno.EADDRINUSE, f"no free port in cluster.port_range={span[0]}-{span[1]}: widen it") from None

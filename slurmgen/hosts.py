"""Which address to bind and what this node is called (no sockets here)."""

from __future__ import annotations

import os
import socket


def node_name() -> str:
    """This node's name for spill and placement (SLURMGEN_NODE overrides, for tests)."""
    return os.environ.get("SLURMGEN_NODE") or socket.gethostname()


def default_host(cluster_kind: str, configured: str) -> str:
    """Address to bind: the configured one, loopback locally, the node's IP on a cluster ("auto")."""
    if configured and configured != "auto":
        return configured
    if cluster_kind == "local" and configured != "auto":
        return "127.0.0.1"
    return socket.gethostbyname(socket.gethostname())

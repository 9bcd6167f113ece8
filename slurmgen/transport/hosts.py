"""Which address to bind and what this node is called (no sockets here)."""

from __future__ import annotations

import fcntl
import os
import socket
import struct

from slurmgen.config.types import ClusterConf
from slurmgen.errors import ConfigError

IFACE = "iface:"  # a --host value resolved on the process's own node: iface:<interface name>
_SIOCGIFADDR = 0x8915


def node_name() -> str:
    """This node's name for spill and placement (SLURMGEN_NODE overrides, for tests)."""
    return os.environ.get("SLURMGEN_NODE") or socket.gethostname()


PLACED = ("peer", "llm", "toolpool", "registry")  # the components cluster.placement may name


def pretend_node(cluster: ClusterConf, component: str, index: int) -> int | None:
    """The pretend node (0-based) of process ``index`` of ``component`` in a local run over
    ``cluster.local_nodes``; None when it is on no pretend node (one node; the registry by default)."""
    if cluster.kind != "local" or cluster.local_nodes <= 1:
        return None
    nodes = cluster.placement.get(component)
    if nodes:
        return nodes[index % len(nodes)]
    return None if component == "registry" else index % cluster.local_nodes


def node_of(cluster: ClusterConf, component: str, index: int) -> str:
    """The node process ``index`` of ``component`` says it is on: its pretend node ``node-<k>``
    in a local run over several (``pretend_node``), else this host's name."""
    node = pretend_node(cluster, component, index)
    return node_name() if node is None else f"node-{node}"


def interface_address(name: str) -> str:
    """The IPv4 address of network interface ``name`` on this node (e.g. ib0, eth0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
        except OSError as exc:
            names = ", ".join(n for _, n in socket.if_nameindex())
            raise ConfigError(f"cluster.interface={name!r} has no IPv4 address on {socket.gethostname()} "
                              f"({exc.strerror}); its interfaces: {names}") from None
    return socket.inet_ntoa(packed[20:24])


def default_host(cluster_kind: str, configured: str, interface: str = "") -> str:
    """Address to bind: the interface's, the configured one, loopback locally, the node's IP on a
    cluster ("auto")."""
    if interface:
        return interface_address(interface)
    if configured.startswith(IFACE):
        return interface_address(configured[len(IFACE):])
    if configured and configured != "auto":
        return configured
    if cluster_kind == "local" and configured != "auto":
        return "127.0.0.1"
    return socket.gethostbyname(socket.gethostname())

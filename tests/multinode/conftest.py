"""The multi-node tier: 3 nodes as network namespaces with their own addresses
(tools/netns_cluster.sh), the driver on the bridge. Skips with its reason where network
namespaces cannot be made (not root, no iproute2).

What is real and what is not: each node has its own network stack, address (10.77.0.10-12),
loopback and link, so every byte between nodes crosses a veth pair and a bridge, and a link
can be cut or slowed (``tc netem``). The nodes share the machine's filesystem (the run
directory, as a shared filesystem on a cluster; each node's spill store is its own directory,
node-<k>), its hostname and its process table. No slurmd per node: one slurmd per namespace
would need its own spool, log and pid files, a slurm.conf listing 3 NodeAddr, and slurmctld
reaching them, for a tier whose subject is the network between processes; the processes are
started under ``ip netns exec`` (``cluster.node_exec``) by the local launcher instead, which
places and restarts them exactly as the SLURM launcher's job arrays would (tests/slurm/ covers
SLURM itself, with virtual nodes).

Every test ends with every task id exactly once and no failed record, and adds its figures
(tasks, duplicates, failed, time to recover, bytes between nodes) to the session's summary,
printed at the end even with ``-q``.
"""

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "tools" / "netns_cluster.sh"
NODES = 3
NAMESPACES = [f"sgnode{k}" for k in range(NODES)]
# the overrides that put a local run's peers and LLM replicas on the namespaces
ON_NODES = ("cluster.local_nodes=3", "cluster.interface=sg0", 'cluster.node_exec=[ip,netns,exec,"sgnode{node}"]',
            "cluster.port_range=31000-31999")
FIGURES: list[str] = []  # one line per run, printed in the terminal summary


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/multinode/" in str(item.fspath):
            item.add_marker(pytest.mark.multinode)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("multinode figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def _existing() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="session")
def netns_nodes():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (tools/netns_cluster.sh up)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 is not installed (apt-get install iproute2)")
    ours = not set(NAMESPACES) <= _existing()  # another session's nodes are used, never removed
    up = subprocess.run(["bash", str(SCRIPT), "up", str(NODES)], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.skip(f"network namespaces are not available here: {up.stderr.strip()[-300:]}")
    yield [f"10.77.0.{10 + k}" for k in range(NODES)]
    if ours:
        subprocess.run(["bash", str(SCRIPT), "down"], capture_output=True, text=True)

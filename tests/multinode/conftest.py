"""The multi-node tier: 3 nodes as network namespaces with their own addresses
(tools/netns_cluster.sh), the driver and registry on the bridge. Skips with its reason
where network namespaces cannot be made (not root, no iproute2)."""

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "tools" / "netns_cluster.sh"
NODES = 3
# the overrides that put a local run's peers and LLM replicas on the namespaces
ON_NODES = ("cluster.local_nodes=3", "cluster.interface=sg0", 'cluster.node_exec=[ip,netns,exec,"sgnode{node}"]',
            "cluster.port_range=31000-31999")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/multinode/" in str(item.fspath):
            item.add_marker(pytest.mark.multinode)


@pytest.fixture(scope="session")
def netns_nodes():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (tools/netns_cluster.sh up)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 is not installed (apt-get install iproute2)")
    up = subprocess.run(["bash", str(SCRIPT), "up", str(NODES)], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.skip(f"network namespaces are not available here: {up.stderr.strip()[-300:]}")
    yield [f"10.77.0.{10 + k}" for k in range(NODES)]
    subprocess.run(["bash", str(SCRIPT), "down"], capture_output=True, text=True)

"""Addresses and ports: an interface resolves on the process's node, ports stay in the range,
pretend nodes get their command prefix."""

import pytest
import zmq

from slurmgen.config.bounds import check_bounds
from slurmgen.config.load import workflow_classes
from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import ConfigError
from slurmgen.run.plan import make_plan
from slurmgen.transport import hosts, ports


def test_an_interface_resolves_to_its_address_and_a_missing_one_names_the_interfaces():
    assert hosts.default_host("slurm", "", "lo") == "127.0.0.1"
    assert hosts.default_host("local", hosts.IFACE + "lo") == "127.0.0.1"
    with pytest.raises(ConfigError) as err:
        hosts.interface_address("nope9")
    assert "cluster.interface='nope9'" in str(err.value) and "lo" in str(err.value)


@pytest.mark.parametrize("spec", ["30000", "3-2", "100-200", "a-b", "30000-70000"])
def test_a_bad_port_range_is_refused(spec):
    with pytest.raises(ConfigError, match="cluster.port_range"):
        ports.parse(spec)


def test_every_bind_takes_a_port_of_the_range(monkeypatch):
    # below the kernel's ephemeral ports (32768-60999 here), which any process's outgoing
    # connection may hold: a range inside them failed in CI when one of its ports was taken
    monkeypatch.setenv(ports.ENV, "23400-23402")
    ctx = zmq.Context()
    try:
        socks = []
        for _ in range(3):
            s = ctx.socket(zmq.ROUTER)
            ports.bind_zmq(s, "127.0.0.1")
            socks.append(s)
        got = sorted(int(s.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1]) for s in socks)
        assert got == [23400, 23401, 23402]
        extra = ctx.socket(zmq.ROUTER)
        with pytest.raises(OSError, match="no free port"):  # the range is used up: say so
            ports.bind_zmq(extra, "127.0.0.1")
        extra.close()
        assert ports.bind_in_range(lambda p: p) in (23400, 23401, 23402)
    finally:
        ctx.destroy(linger=0)  # every socket, also one whose bind failed (term() alone waits for it)


def test_pretend_nodes_get_the_prefix_and_the_run_env_gets_the_range(tmp_path):
    conf = SlurmgenConf(workflow=workflow_classes()["nr"]())
    conf.run.peers, conf.llm.replicas = 3, 2
    conf.cluster.local_nodes = 2
    conf.cluster.node_exec = ["ip", "netns", "exec", "n{node}"]
    conf.cluster.interface = "sg0"
    conf.cluster.port_range = "31000-31999"
    plan = make_plan(conf, tmp_path)
    assert plan.registry.argv[0] != "ip" and "iface:sg0" in plan.registry.argv
    peers = {s.name: s for s in plan.peers}
    assert peers["peer-2"].argv[:4] == ["ip", "netns", "exec", "n0"] and peers["peer-1"].argv[3] == "n1"
    assert peers["peer-1"].env["SLURMGEN_NODE"] == "node-1"
    assert all(s.env[ports.ENV] == "31000-31999" for s in plan.all())


def test_placement_puts_pools_apart_and_moves_the_registry_at_each_restart(tmp_path):
    conf = SlurmgenConf(workflow=workflow_classes()["tau2"]())
    conf.run.peers, conf.llm.replicas, conf.toolpool.size = 2, 2, 2
    conf.cluster.local_nodes = 3
    conf.cluster.node_exec = ["ip", "netns", "exec", "n{node}"]
    conf.cluster.placement = {"toolpool": [2], "peer": [0, 1], "registry": [2, 0]}
    plan = make_plan(conf, tmp_path)
    where = {s.name: s.env.get("SLURMGEN_NODE") for s in plan.all()}
    assert where == {"registry": "node-2", "llm-0": "node-0", "llm-1": "node-1", "pool-0": "node-2",
                     "pool-1": "node-2", "peer-0": "node-0", "peer-1": "node-1"}
    first = plan.registry
    assert first.argv[3] == "n2"
    second = first.moved()
    third = second.moved()
    assert (second.argv[3], second.env["SLURMGEN_NODE"]) == ("n0", "node-0")
    assert (third.argv[3], third.env["SLURMGEN_NODE"]) == ("n2", "node-2") and third.moved().argv[3] == "n0"
    assert plan.peers[0].moved() is plan.peers[0]  # a peer stays on its node (its spill store is there)


def test_placement_is_checked_before_anything_starts():
    conf = SlurmgenConf(workflow=workflow_classes()["nr"]())
    conf.cluster.local_nodes = 3
    conf.cluster.placement = {"pool": [1], "peer": [3], "llm": []}
    with pytest.raises(ConfigError) as err:
        check_bounds(conf)
    text = str(err.value)
    assert "cluster.placement.pool is not a component; valid: peer, llm, toolpool, registry" in text
    assert "cluster.placement.peer=[3]: nodes are 0..2" in text and "cluster.placement.llm=[]" in text
    conf.cluster.local_nodes = 1
    with pytest.raises(ConfigError, match="needs cluster=local and cluster.local_nodes > 1"):
        check_bounds(conf)

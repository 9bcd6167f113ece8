"""Addresses and ports: an interface resolves on the process's node, ports stay in the range,
pretend nodes get their command prefix."""

import pytest
import zmq

from slurmgen import hosts, ports
from slurmgen.confload import workflow_classes
from slurmgen.config import SlurmgenConf
from slurmgen.errors import ConfigError
from slurmgen.launchers.plan import make_plan


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
    socks = []
    try:
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

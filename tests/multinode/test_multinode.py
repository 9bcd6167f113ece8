"""nr, coral and tau2 across nodes with their own addresses: placement, spill fetched across
nodes (with spill on and off), and a fault during a run — every process of a node killed, a
node cut off for 30 s, one node's packets delayed and dropped (tc netem, or a user-space
relay where the kernel has no netem), the registry killed and restarted on another node.
Each run ends with every task id exactly once and no failed record; its figures go to the
session summary (tests/multinode/conftest.py).

Time to recover: from the end of the fault (the kill, the heal, delay and loss removed) until
every task it touched is written — those issued again (attempt > 0) and those of the shard
whose origin was on the node hit that were in flight when it began — and that shard has
written a record again; for the registry, until every process is registered with the new one.
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from slurmgen.config.types import SpillConf
from slurmgen.spill.paths import store_path
from tests.conftest import REPO, count_records, read_records, slurmgen_processes
from tests.multinode.conftest import FIGURES, ON_NODES, SCRIPT

FAST = ("llm.time_scale=300", "run.peers=3", "llm.replicas=3", "run.progress=false", "spill.threshold_bytes=64")
LEASES = ("run.lease_s=4", "run.lease_renew_s=1")  # a lost task is issued again within seconds
SPREAD = ("run.peer_capacity=2", "run.max_in_flight=96")  # few handlers per peer: tasks hop between nodes
IMPAIR = ("200", "50", "5")  # ms delay, ms jitter, % loss


@dataclass
class Fault:
    shards: tuple[str, ...]  # the shards whose origin is on the node hit ("peer-1")
    start: float = 0.0  # Unix time, as the records' timestamps
    end: float = 0.0
    settled_s: float = 0.0  # a recovery the test measured itself (the registry's members back)


def driver(run_dir: Path, workflow: str, *overrides: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "slurmgen", f"workflow={workflow}", f"run.dir={run_dir}", *FAST, *ON_NODES,
            *overrides]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout_s: float = 240) -> None:
    try:
        _, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err


def registered(run_dir: Path) -> dict[str, tuple[str, str]]:
    """name -> (address, node), as the registry logged each registration (the last one wins)."""
    text = (run_dir / "logs" / "registry.log").read_text()
    return {name: (address, node) for name, address, node in
            re.findall(r"registered (\S+) \(\w+\) at (\S+) on (\S+)", text)}


def peer_stats(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (run_dir / "state").glob("stats-peer-*.json")]


def wait_for_records(run_dir: Path, n: int, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while count_records(run_dir) < n:
        assert time.time() < deadline, f"fewer than {n} records after {timeout_s:.0f} s"
        time.sleep(0.2)


def recovery_s(records: list, fault: Fault) -> float:
    hit = [r for r in records if r.peer.split(".")[0] in fault.shards]
    touched = [r.finished_at for r in records if r.attempt > 0]
    touched += [r.finished_at for r in hit if r.created_at < fault.start < r.finished_at]
    touched += [min((r.finished_at for r in hit if r.finished_at >= fault.end), default=fault.end)]
    return max([fault.settled_s] + [t - fault.end for t in touched])


def check(label: str, run_dir: Path, tasks: int, fault: Fault | None = None) -> dict:
    """Every task once, none failed; the run's figures into the session summary."""
    recs = read_records(run_dir)
    ids = collections.Counter(r.task_id for r in recs)
    failed = [(r.task_id, r.reason) for r in recs if r.status == "failed"]
    cross = json.loads((run_dir / "summary.json").read_text())["cross_node"]
    stats = peer_stats(run_dir)
    again = sum(s.get("reissued", 0) + s.get("retried", 0) for s in stats)
    late = sum(s.get("duplicates", 0) for s in stats)
    during = sum(fault.start <= r.finished_at <= fault.end for r in recs) if fault else 0
    line = (f"{label}: tasks {len(ids)}/{tasks}, duplicates {sum(ids.values()) - len(ids)}, failed {len(failed)}"
            + (f", time to recover {recovery_s(recs, fault):.1f} s ({during} records written during the fault, "
               f"{sum(r.finished_at > fault.end for r in recs)} after)" if fault else "")
            + f", cross-node bytes {cross['bytes_sent']} (spilled payloads fetched {cross['spill_bytes_fetched']} "
            f"in {cross['spill_fetches']} fetches, tool pools {cross['tool_bytes']}); issued again {again}, "
            f"late duplicates dropped {late}")
    FIGURES.append(line)
    print("\n" + line)
    assert len(ids) == tasks and sum(ids.values()) == tasks and failed == []
    assert slurmgen_processes(run_dir) == []
    return cross


def test_nr_on_three_nodes_fetches_spill_across_nodes_and_counts_the_bytes(netns_nodes, tmp_path):
    cross = {}
    for spill in ("on", "off"):
        run_dir = tmp_path / spill
        finish(driver(run_dir, "nr", "dataset.limit=300", *SPREAD, f"spill.enabled={spill == 'on'}"))
        cross[spill] = check(f"nr spill {spill}", run_dir, 300)
        where = registered(run_dir)
        hosts = {name: re.match(r"\w+://([\d.]+):(\d+)", a).groups() for name, (a, _) in where.items()}
        assert {h for n, (h, _) in hosts.items() if n.startswith("peer-")} == set(netns_nodes)
        assert {hosts[f"llm-{k}"][0] for k in range(3)} == set(netns_nodes)
        assert all(31000 <= int(port) <= 31999 for _, port in hosts.values())  # cluster.port_range
        # the records' origins are peers on 3 distinct nodes
        assert len({where[r.peer][1] for r in read_records(run_dir)}) == 3
    assert cross["on"]["spill_fetches"] > 0 and cross["on"]["spill_bytes_fetched"] > 0
    assert cross["off"]["spill_fetches"] == 0 and cross["off"]["bytes_sent"] > 0
    status = subprocess.run([sys.executable, "-m", "slurmgen", "status", str(tmp_path / "on")], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    assert f"between nodes: {cross['on']['bytes_sent']} bytes sent peer to peer" in status, status


def test_nr_losing_every_process_of_a_node_loses_no_task(netns_nodes, tmp_path):
    run_dir = tmp_path / "run"
    proc = driver(run_dir, "nr", "dataset.limit=600", "llm.time_scale=30", *SPREAD, *LEASES)
    fault = Fault(("peer-1",))
    try:
        wait_for_records(run_dir, 100)
        pids = subprocess.run(["ip", "netns", "pids", "sgnode1"], capture_output=True, text=True).stdout.split()
        assert pids, "node 1 ran nothing"
        fault.start = fault.end = time.time()
        subprocess.run(["kill", "-9", *pids])
        shutil.rmtree(store_path(SpillConf(), run_dir.resolve(), "node-1"), ignore_errors=True)  # its disk too
    finally:
        finish(proc)
    check(f"nr node loss ({len(pids)} processes of sgnode1 killed, its spill store removed)", run_dir, 600, fault)


def test_nr_a_node_cut_off_for_30_s_heals_and_no_task_is_lost(netns_nodes, tmp_path):
    run_dir = tmp_path / "run"
    # slower LLMs: the run outlasts the cut, and what was cut off must come back
    proc = driver(run_dir, "nr", "dataset.limit=600", "llm.time_scale=10", *SPREAD, *LEASES)
    fault = Fault(("peer-2",))
    link = ["ip", "-n", "sgnode2", "link", "set", "sg0"]
    try:
        wait_for_records(run_dir, 100)
        fault.start = time.time()
        subprocess.run([*link, "down"], check=True)
        time.sleep(30)
    finally:
        subprocess.run([*link, "up"], check=True)
        fault.end = time.time()
        finish(proc, 300)
    check("nr partition (sgnode2's link down 30 s)", run_dir, 600, fault)


def test_coral_with_one_node_slowed_and_lossy(netns_nodes, tmp_path):
    """Node 1's frames delayed 200 ms ± 50 ms and 5 % dropped, both ways, for 20 s: by tc netem,
    or where the kernel has none by tools/netns_linkem.py (tools/netns_cluster.sh impair)."""
    run_dir = tmp_path / "run"
    proc = driver(run_dir, "coral", "llm.time_scale=30", *SPREAD, *LEASES)
    fault = Fault(("peer-1",))
    try:
        wait_for_records(run_dir, 30)
        fault.start = time.time()
        impair = subprocess.run(["bash", str(SCRIPT), "impair", "1", *IMPAIR], capture_output=True, text=True)
        if impair.returncode != 0:
            pytest.skip(f"neither tc netem nor a TAP device works here: {impair.stderr.strip()[-300:]}")
        time.sleep(20)
    finally:
        healed = subprocess.run(["bash", str(SCRIPT), "heal", "1"], capture_output=True, text=True)
        fault.end = time.time()
        finish(proc)
    how = impair.stdout.strip().split(": ", 1)[-1]
    check(f"coral delay and loss on sgnode1 for 20 s ({how}; {healed.stdout.splitlines()[0]})", run_dir, 300, fault)


def test_tau2_with_pools_on_another_node_and_the_registry_restarted_elsewhere(netns_nodes, tmp_path):
    run_dir = tmp_path / "run"
    # peers on nodes 0 and 1, both tool-pool members on node 2; the registry on node 2, then node 0
    # 6 in flight: the 40 tasks run in waves, so the peers still work when the registry moves
    # (all 40 at once finished 3 s after the 4th record once telecom's sessions opened in 0.4 ms)
    proc = driver(run_dir, "tau2", "workflow.domain=telecom", "llm.script=oracle", "dataset.limit=40",
                  "llm.time_scale=10", "toolpool.size=2", "run.max_in_flight=6", *LEASES,
                  "+cluster.placement={peer:[0,1],toolpool:[2],registry:[2,0]}")
    fault = Fault(())
    try:
        wait_for_records(run_dir, 4)
        first = json.loads((run_dir / "registry.json").read_text())
        fault.start = fault.end = time.time()
        subprocess.run(["kill", "-9", str(first["pid"])], check=True)
        while json.loads((run_dir / "registry.json").read_text())["pid"] == first["pid"]:
            assert time.time() - fault.start < 60, "the registry was not restarted"
            time.sleep(0.1)
        moved = time.time() - fault.start
    finally:
        finish(proc)
    second = json.loads((run_dir / "registry.json").read_text())
    assert first["router"].startswith("tcp://10.77.0.12:") and second["router"].startswith("tcp://10.77.0.10:")
    where = registered(run_dir)
    assert {node for name, (_, node) in where.items() if name.startswith("pool-")} == {"node-2"}
    assert {node for name, (_, node) in where.items() if name.startswith("peer-")} == {"node-0", "node-1"}
    fault.settled_s = again = _reregistered_s(run_dir, second["pid"], fault.start)
    cross = check(f"tau2 registry restart (on sgnode2, killed, restarted on sgnode0 in {moved:.1f} s; every member "
                  f"registered again {again:.1f} s after the kill)", run_dir, 40, fault)
    assert cross["tool_bytes"] > 0  # every tool call crossed to node 2
    assert {r.metrics["reward"] for r in read_records(run_dir)} == {1.0}


def _reregistered_s(run_dir: Path, pid: int, since: float) -> float:
    """Seconds from ``since`` until registry ``pid`` had every member of the run registered."""
    lines = (run_dir / "logs" / "registry.log").read_text().splitlines()
    first_round = {m for line in lines if f"pid={pid} " not in line
                   for m in re.findall(r"registered (\S+?)(?:\.\w+)? \(", line)}
    seen: set[str] = set()
    for line in lines:
        if f"pid={pid} " in line and (m := re.search(r"registered (\S+?)(?:\.\w+)? \(", line)):
            seen.add(m.group(1))
            if seen >= first_round:
                stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
                return stamp - since
    raise AssertionError(f"not every member registered with the restarted registry: {sorted(first_round - seen)}")

"""Runs across nodes with their own addresses: placement, cross-node spill, node loss and a
network partition. Each run ends with every task id exactly once and no failed record."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO, count_records, read_records, slurmgen_processes
from tests.multinode.conftest import ON_NODES

FAST = ("llm.time_scale=300", "run.peers=3", "llm.replicas=3", "run.progress=false", "spill.threshold_bytes=64")


def driver(run_dir: Path, *overrides: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "slurmgen", "workflow=nr", f"run.dir={run_dir}", *FAST, *ON_NODES,
                             *overrides], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def registered(run_dir: Path) -> dict[str, str]:
    """name -> address, as the registry logged each registration."""
    text = (run_dir / "logs" / "registry.log").read_text()
    return dict(re.findall(r"registered (\S+) \(\w+\) at (\S+)", text))


def peer_stats(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (run_dir / "state").glob("stats-peer-*.json")]


def wait_for_records(run_dir: Path, n: int, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while count_records(run_dir) < n and time.time() < deadline:
        time.sleep(0.2)


def exactly_once(run_dir: Path, n: int) -> None:
    recs = read_records(run_dir)
    assert len(recs) == n and len({r.task_id for r in recs}) == n
    assert [r.reason for r in recs if r.status == "failed"] == []


def test_peers_and_servers_bind_their_nodes_addresses_and_fetch_spill_across_nodes(netns_nodes, tmp_path):
    run_dir = tmp_path / "run"
    proc = driver(run_dir, "dataset.limit=300", "run.peer_capacity=2", "run.max_in_flight=96")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    exactly_once(run_dir, 300)
    addresses = registered(run_dir)
    hosts = {name: re.match(r"\w+://([\d.]+):(\d+)", a).groups() for name, a in addresses.items()}
    assert {h for n, (h, _) in hosts.items() if n.startswith("peer-")} == set(netns_nodes)
    assert {hosts[f"llm-{k}"][0] for k in range(3)} == set(netns_nodes)
    assert all(31000 <= int(port) <= 31999 for _, port in hosts.values())  # cluster.port_range
    stats = peer_stats(run_dir)
    fetches = sum(s["received"].get("fetch", 0) for s in stats)
    crossed = sum(s["received"].get("bytes_Blobs_sent", 0) for s in stats)
    print(f"\ncross-node spill: {fetches} fetches answered, {crossed} payload bytes sent between nodes")
    assert fetches > 0 and crossed > 0


def test_losing_every_process_of_a_node_loses_no_task(netns_nodes, tmp_path):
    run_dir = tmp_path / "run"
    proc = driver(run_dir, "dataset.limit=600", "llm.time_scale=30", "run.lease_s=4", "run.lease_renew_s=1")
    wait_for_records(run_dir, 100)
    pids = subprocess.run(["ip", "netns", "pids", "sgnode1"], capture_output=True, text=True).stdout.split()
    assert pids, "node 1 ran nothing"
    at, before = time.monotonic(), count_records(run_dir)
    subprocess.run(["kill", "-9", *pids])
    while count_records(run_dir) <= before + 50 and time.monotonic() - at < 120:
        time.sleep(0.2)
    print(f"\nnode loss: {len(pids)} processes of sgnode1 killed at {before} records; "
          f"50 more records {time.monotonic() - at:.1f} s later")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    exactly_once(run_dir, 600)
    assert slurmgen_processes(run_dir) == []


def test_a_partitioned_node_heals_and_no_task_is_lost(netns_nodes, tmp_path):
    run_dir = tmp_path / "run"
    proc = driver(run_dir, "dataset.limit=600", "llm.time_scale=30", "run.lease_s=4", "run.lease_renew_s=1")
    wait_for_records(run_dir, 100)
    link = ["ip", "-n", "sgnode2", "link", "set", "sg0"]
    subprocess.run([*link, "down"], check=True)
    try:
        time.sleep(15)
        during = count_records(run_dir)
    finally:
        subprocess.run([*link, "up"], check=True)
    healed = time.monotonic()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    print(f"\npartition: sgnode2 cut off for 15 s ({during} records by then); run finished "
          f"{time.monotonic() - healed:.1f} s after the heal")
    exactly_once(run_dir, 600)

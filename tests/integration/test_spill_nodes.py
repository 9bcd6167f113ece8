"""Spill across (simulated) nodes: payloads travel as refs, are fetched from their node,
freed when written; a node that dies with payloads makes its tasks start again."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from slurmgen.config.types import SpillConf
from slurmgen.spill.paths import store_path
from tests.conftest import REPO, count_records, read_records, run_slurmgen
from tests.integration.test_chaos import pids


def peer_stats(run_dir) -> list[dict]:
    return [json.loads(p.read_text()) for p in (run_dir / "state").glob("stats-peer-*.json")]


def sent(run_dir, key: str) -> int:
    return sum(s["received"].get(key, 0) for s in peer_stats(run_dir))


def contents(run_dir) -> dict:
    return {r.task_id: (r.status, r.reason, [t.content for t in r.history]) for r in read_records(run_dir)}


def test_spill_cuts_bytes_on_the_wire(tmp_path):
    common = ["workflow=nr", "dataset.limit=200", "llm.time_scale=300", "run.peers=4", "cluster.local_nodes=2"]
    run_slurmgen(*common, f"run.dir={tmp_path / 'inline'}", "spill.enabled=false")
    run_slurmgen(*common, f"run.dir={tmp_path / 'spill'}", "spill.enabled=true")
    inline, spilled = sent(tmp_path / "inline", "bytes_orch_sent"), sent(tmp_path / "spill", "bytes_orch_sent")
    fetched = sent(tmp_path / "spill", "bytes_Blobs_sent")
    assert spilled + fetched < 0.8 * inline, (spilled, fetched, inline)
    assert contents(tmp_path / "inline") == contents(tmp_path / "spill")
    assert all(t.content_ref is None for r in read_records(tmp_path / "spill") for t in r.history)


def test_spilled_payloads_are_fetched_across_nodes(tmp_path):
    # few credits per peer: a node fills up and tasks overflow to the other node
    common = ["workflow=nr", "dataset.limit=150", "llm.time_scale=300", "run.peers=4", "cluster.local_nodes=2",
              "run.peer_capacity=3", "run.max_in_flight=64"]
    run_slurmgen(*common, f"run.dir={tmp_path / 'inline'}", "spill.enabled=false")
    run_slurmgen(*common, f"run.dir={tmp_path / 'spill'}", "spill.enabled=true")
    assert sent(tmp_path / "spill", "fetch") > 0 and sent(tmp_path / "spill", "bytes_Blobs_sent") > 0
    assert contents(tmp_path / "inline") == contents(tmp_path / "spill")
    # what crossed between the two nodes, in summary.json and slurmgen status
    crossed = {kind: json.loads((tmp_path / kind / "summary.json").read_text())["cross_node"]
               for kind in ("inline", "spill")}
    spill = crossed["spill"]
    assert spill["spill_fetches"] > 0 and spill["spill_bytes_fetched"] > 0
    assert crossed["inline"]["spill_fetches"] == 0 and crossed["inline"]["bytes_sent"] > 0
    assert spill["bytes_sent"] == sum(s["cross_node"]["bytes_sent"] for s in peer_stats(tmp_path / "spill"))
    status = subprocess.run([sys.executable, "-m", "slurmgen", "status", str(tmp_path / "spill")], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    assert (f"between nodes: {spill['bytes_sent']} bytes sent peer to peer" in status
            and f"{spill['spill_bytes_fetched']} bytes in {spill['spill_fetches']} fetches" in status), status


def test_a_node_dying_with_payloads_makes_its_tasks_start_again(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "slurmgen", "workflow=nr", "dataset.limit=600", f"run.dir={run_dir}",
            "llm.time_scale=8", "run.peers=4", "cluster.local_nodes=2", "run.max_in_flight=64",
            "run.lease_s=3", "run.lease_renew_s=0.5"]
    driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while count_records(run_dir) < 80:
            assert driver.poll() is None
            time.sleep(0.2)
        node1 = store_path(SpillConf(), run_dir.resolve(), "node-1")
        for pid in pids(run_dir, "--shard 1 ") + pids(run_dir, "--shard 3 "):  # node-1 = shards 1 and 3
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(node1, ignore_errors=True)  # the node's scratch is gone with it
        _, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err
    recs = read_records(run_dir)
    assert len(recs) == 600 and len({r.task_id for r in recs}) == 600
    assert not [r for r in recs if r.status == "failed"], "lost tasks were retried, none failed for good"
    restarted = sum(s.get("reissued", 0) + s.get("retried", 0) for s in peer_stats(run_dir))
    assert restarted > 0

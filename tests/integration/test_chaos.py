"""Kill peers, the registry and a simulator replica mid-run: every task is written exactly once."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, count_records, read_records, slurmgen_processes


def pids(run_dir, needle: str) -> list[int]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines()[1:]
            if str(run_dir) in line and needle in line]


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


@pytest.mark.slow
def test_chaos_every_task_exactly_once(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "slurmgen", "workflow=nr", "dataset.limit=1000", "run.trials=2",
            f"run.dir={run_dir}", "run.peers=3", "llm.replicas=2", "llm.time_scale=10",
            "run.max_in_flight=128", "run.lease_s=4", "run.lease_renew_s=0.5", "run.heartbeat_s=0.5"]
    driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rng = random.Random(7)
    kills = {"peer": 0, "registry": 0, "sim": 0, "term-peer": 0}
    try:
        while count_records(run_dir) < 100:
            time.sleep(0.2)
        plan = ["peer", "registry", "term-peer", "peer", "sim", "peer", "registry", "peer", "peer"]
        for what in plan:
            if driver.poll() is not None:
                break
            needle = {"peer": "slurmgen.runtime.peer", "term-peer": "slurmgen.runtime.peer",
                      "registry": "slurmgen.registry.server", "sim": "-m slurmgen.sim "}[what]
            victims = pids(run_dir, needle)
            if victims:  # SIGTERM = preemption: the peer drains, exits, is restarted, resumes
                kill(rng.choice(victims), signal.SIGTERM if what == "term-peer" else signal.SIGKILL)
                kills[what] += 1
            time.sleep(rng.uniform(1.5, 3.0))
        _out, err = driver.communicate(timeout=400)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err
    assert kills["peer"] >= 3 and kills["registry"] >= 1 and kills["sim"] >= 1, kills
    recs = read_records(run_dir)
    ids = [r.task_id for r in recs]
    assert len(ids) == 2000, (len(ids), kills)
    assert len(set(ids)) == 2000
    assert {r.trial for r in recs} == {0, 1}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tasks_total"] == 2000
    stats = [json.loads(p.read_text()) for p in (run_dir / "state").glob("stats-peer-*.json")]
    print("kills", kills, "reissued", sum(s.get("reissued", 0) for s in stats),
          "duplicates", sum(s.get("duplicates", 0) for s in stats), "wall_s", summary["wall_s"])
    assert slurmgen_processes(run_dir) == []

"""`slurmgen status RUN_DIR` against a live run and a finished one."""

import re
import signal
import subprocess
import sys
import time

from tests.conftest import REPO, count_records, run_slurmgen


def status(run_dir) -> str:
    proc = subprocess.run([sys.executable, "-m", "slurmgen", "status", str(run_dir)], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_status_of_a_live_run_then_of_a_finished_one(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "slurmgen", "workflow=nr", "dataset.limit=300", f"run.dir={run_dir}",
            "llm.time_scale=4", "run.max_in_flight=24", "run.lease_renew_s=0.5"]
    driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and count_records(run_dir) < 15:
            time.sleep(0.2)
        time.sleep(1.0)  # peers rewrite their stats every lease_renew_s
        live = status(run_dir)
        done = int(re.search(r"tasks: (\d+) done", live).group(1))
        in_flight = int(re.search(r"(\d+) in flight", live).group(1))
        assert 15 <= done < 300 and in_flight > 0, live
        assert "300 expected" in live and "ETA:" in live
        assert re.search(r"tokens/s: [1-9]\d* now", live), live
        assert "filter" in live and "latency p50" in live
        assert "requests outstanding" in live
    finally:
        driver.send_signal(signal.SIGINT)
        driver.wait(60)
    run_slurmgen("workflow=nr", "dataset.limit=300", f"run.dir={run_dir}", "llm.time_scale=300")
    final = status(run_dir)
    assert "tasks: 300 done" in final and "0 in flight" in final and "finished:" in final
    shard = sorted((run_dir / "results").glob("shard-*.jsonl"))[0]
    with open(shard, "ab") as f:  # what a reader sees while a peer is mid-write
        f.write(shard.read_bytes().splitlines()[0][:40])
    assert "tasks: 300 done" in status(run_dir)


def test_status_of_something_else_says_so(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "slurmgen", "status", str(tmp_path)], capture_output=True,
                          text=True, cwd=REPO)
    assert proc.returncode == 2 and "not a run directory" in proc.stdout

"""SIGTERM to the driver: drain, stop everything, exit 143; SIGINT: stop, exit 130. The same
command then resumes and writes every task once."""

import signal
import subprocess
import sys
import time

import pytest

from slurmgen.exitcodes import Exit
from tests.conftest import REPO, count_records, read_records, run_slurmgen, slurmgen_processes


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, Exit.TERMINATED), (signal.SIGINT, Exit.INTERRUPTED)])
def test_a_signalled_driver_exits_with_its_code_and_the_same_command_resumes_once(tmp_path, sig, code):
    run_dir = tmp_path / "run"
    args = ["workflow=nr", "dataset.limit=300", f"run.dir={run_dir}", "run.max_in_flight=16", "run.progress=false"]
    driver = subprocess.Popen([sys.executable, "-m", "slurmgen", *args, "llm.time_scale=5"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and count_records(run_dir) < 20:
        time.sleep(0.2)
    assert len(slurmgen_processes(run_dir)) >= 5
    driver.send_signal(sig)
    _, err = driver.communicate(timeout=90)
    assert driver.returncode == code, err
    assert "resume" in err and ("SIGTERM" in err) == (sig == signal.SIGTERM)
    assert slurmgen_processes(run_dir) == []
    first = read_records(run_dir)  # strict: no torn line
    assert 20 <= len(first) < 300
    run_slurmgen(*args, "llm.time_scale=200")
    ids = [r.task_id for r in read_records(run_dir)]
    assert len(ids) == 300 and len(set(ids)) == 300

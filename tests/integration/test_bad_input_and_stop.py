"""Bad rows become failed records; Ctrl-C stops everything; the same run.dir resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, count_records, read_records, run_slurmgen, slurmgen_processes


def doc(i: int, en: float = 0.95) -> dict:
    return {"text": f"Prove that the sum of the first {i} odd numbers is {i} squared. " * 20,
            "metadata": {"WARC-Record-ID": f"<urn:uuid:doc-{i}>"},
            "language_id_whole_page_fasttext": {"en": en}}


def test_malformed_lines_and_missing_fields_become_failed_records(tmp_path):
    lines = [json.dumps(doc(i)) for i in range(10)]
    lines[3] = '{"text": "unterminated'
    bad = doc(6)
    del bad["text"]
    lines[6] = json.dumps(bad)
    lines[8] = json.dumps(doc(8)) + " trailing"
    data = tmp_path / "docs.jsonl"
    data.write_text("\n".join(lines) + "\n")
    run_dir = tmp_path / "run"
    run_slurmgen("workflow=nr", f"dataset.path={data}", f"run.dir={run_dir}", "llm.time_scale=500")
    recs = {r.row_id: r for r in read_records(run_dir)}
    assert len(recs) == 10
    failed = {k: r.reason for k, r in recs.items() if r.status == "failed"}
    own = doc(6)["metadata"]["WARC-Record-ID"]  # a missing field: the row keeps its own id
    assert set(failed) == {"line-4", own, "line-9"}
    assert "line 4" in failed["line-4"] and "JSON" in failed["line-4"]
    assert "line 7" in failed[own] and "`text`" in failed[own] and recs[own].line == 7
    assert "line 9" in failed["line-9"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tasks_failed"] == 3 and summary["tasks_total"] == 10


def test_ctrl_c_stops_every_process_and_a_rerun_resumes(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "slurmgen", "workflow=nr", "dataset.limit=400", f"run.dir={run_dir}",
            "llm.time_scale=5", "run.max_in_flight=16"]
    driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and count_records(run_dir) < 20:
        time.sleep(0.2)
    assert len(slurmgen_processes(run_dir)) >= 5  # registry, 2 supervisors + 2 sims, 2 peers
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err
    assert "resume" in err
    assert slurmgen_processes(run_dir) == []
    first = len(read_records(run_dir))
    assert 20 <= first < 400
    run_slurmgen("workflow=nr", "dataset.limit=400", f"run.dir={run_dir}", "llm.time_scale=200")
    recs = read_records(run_dir)
    assert len(recs) == 400 and len({r.task_id for r in recs}) == 400
    assert os.path.exists(run_dir / "summary.json")


def test_a_killed_driver_leaves_no_process_behind(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "slurmgen", "workflow=nr", "dataset.limit=400", f"run.dir={run_dir}",
            "llm.time_scale=5", "run.max_in_flight=16"]
    driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and count_records(run_dir) < 5:
        time.sleep(0.2)
    assert len(slurmgen_processes(run_dir)) >= 5
    driver.kill()
    driver.wait()
    deadline = time.time() + 90  # peers drain for up to run.drain_s first; the machine may be loaded
    while time.time() < deadline and slurmgen_processes(run_dir):
        time.sleep(0.2)
    assert slurmgen_processes(run_dir) == []


def test_a_killed_driver_then_a_rerun_writes_every_task_once(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "slurmgen", "workflow=nr", "dataset.limit=300", f"run.dir={run_dir}",
            "llm.time_scale=5", "run.max_in_flight=32"]
    driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and count_records(run_dir) < 30:
        time.sleep(0.1)
    driver.kill()  # no cleanup at all: children die with it, shards may end in a torn line
    driver.wait()
    while slurmgen_processes(run_dir):
        time.sleep(0.2)
    first = count_records(run_dir)
    assert 30 <= first < 300
    run_slurmgen("workflow=nr", "dataset.limit=300", f"run.dir={run_dir}", "llm.time_scale=200")
    recs = read_records(run_dir)
    assert len(recs) == 300 and len({r.task_id for r in recs}) == 300


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_run_stops_early_when_too_many_tasks_fail(tmp_path, log_format):
    run_dir = tmp_path / "run"
    # 2,000 tasks, 4 at a time: the driver sees the rate long before they could all fail
    proc = run_slurmgen("workflow=nr", "run.trials=2", f"run.dir={run_dir}", "llm.backend=openai",
                        "llm.urls=[http://127.0.0.1:9]", "llm.max_retries=0", "llm.backoff_s=0.01",
                        "run.max_attempts=1", "run.min_tasks_for_rate=40", "run.max_in_flight=4", "run.fail_fast_tasks=0",
                        f"run.log_format={log_format}", check=False)
    assert proc.returncode == 4, proc.stderr  # Exit.EARLY_STOP
    assert "stopping early" in proc.stderr and "run.max_failure_rate" in proc.stderr
    assert "llm_error" in proc.stderr
    assert slurmgen_processes(run_dir) == []
    assert 40 <= count_records(run_dir) < 2000
    failed = [r for r in read_records(run_dir) if r.status == "failed"]
    log_file, _, needle = failed[0].log.partition(" ")
    assert needle == f"task={failed[0].task_id}"
    assert needle in (run_dir / log_file).read_text()  # the record points to its log lines
    if log_format == "json":  # every line of every process log is an object; task lines name the task
        lines = [json.loads(line) for p in (run_dir / "logs").glob("*.log") if not p.name.startswith("llm-")
                 for line in p.read_text().splitlines()]
        assert {"ts", "level", "logger", "pid", "msg"} <= set(lines[0])
        mine = [line for line in lines if line.get("task") == failed[0].task_id]
        assert mine and all(line["level"] in ("WARNING", "ERROR", "INFO") for line in mine)


def test_invalid_utf8_and_oversize_rows_become_failed_records_and_the_run_ends(tmp_path):
    lines = [json.dumps(doc(i)).encode() for i in range(20)]
    lines[4] = lines[4].replace(b"Prove", b"caf\xe9 \xff\xfe Prove", 1)  # web text: bytes that are not UTF-8
    lines[9] = json.dumps(doc(9) | {"text": "x" * 5000}).encode()
    data = tmp_path / "docs.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    run_dir = tmp_path / "run"
    run_slurmgen("workflow=nr", f"dataset.path={data}", f"run.dir={run_dir}", "llm.time_scale=500",
                 "dataset.max_row_bytes=4000", timeout=120)
    recs = {r.row_id: r for r in read_records(run_dir)}
    assert len(recs) == 20
    failed = {k: r.reason for k, r in recs.items() if r.status == "failed"}
    assert failed == {"<urn:uuid:doc-4>": "bad_input: line 5: not valid UTF-8 at byte 13 (invalid continuation byte)",
                      "<urn:uuid:doc-9>": f"bad_input: line 10: {len(lines[9])} bytes, over dataset.max_row_bytes=4000"}

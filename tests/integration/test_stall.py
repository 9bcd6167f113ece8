"""A run that stops making progress says so and stops: exit code 7 and state/stall.json."""

import json

from slurmgen.exitcodes import Exit
from tests.conftest import read_records, run_slurmgen, slurmgen_processes
from tests.integration.hang_script import HANG_MARK

HUNG = "<urn:uuid:doc-5>:0"


def doc(i: int, text: str = "") -> dict:
    body = text or f"Prove that the sum of the first {i} odd numbers is {i} squared. " * 20
    return {"text": body, "metadata": {"WARC-Record-ID": f"<urn:uuid:doc-{i}>"},
            "language_id_whole_page_fasttext": {"en": 0.95}}


def test_a_request_never_answered_ends_with_the_stall_exit_code_and_names_task_and_endpoint(tmp_path):
    rows = [doc(i) for i in range(12)]
    rows[5] = doc(5, f"{HANG_MARK}. " + "Prove that seven is prime, step by step. " * 20)
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir = tmp_path / "run"
    proc = run_slurmgen("workflow=nr", f"dataset.path={data}", f"run.dir={run_dir}", "llm.time_scale=500",
                        "llm.script=tests.integration.hang_script:respond", "run.max_attempts=1",
                        "llm.request_timeout_s=3600", "run.stall_s=4", "run.stall_stop_s=8",
                        "run.lease_renew_s=0.5", timeout=180, check=False)
    assert proc.returncode == Exit.STALLED, proc.stderr
    assert "stalled" in proc.stderr and "stall.json" in proc.stderr
    assert slurmgen_processes(run_dir) == []
    recs = read_records(run_dir)
    assert len(recs) == 11 and HUNG not in {r.task_id for r in recs}
    stall = json.loads((run_dir / "state" / "stall.json").read_text())
    assert stall["waiting_tasks"] == [HUNG]
    busy = {url: n for url, n in stall["endpoints"].items() if n}
    assert len(busy) == 1 and list(busy.values()) == [1]
    assert [p["llm_outstanding"] for p in stall["peers"] if p["llm_outstanding"]] == [busy]
    assert stall["records"] == 11 and stall["expected"] == 12
    assert HUNG in proc.stderr and next(iter(busy)) in proc.stderr
    status = run_slurmgen("status", str(run_dir), check=False)
    assert "STALLED since" in status.stdout, status.stdout

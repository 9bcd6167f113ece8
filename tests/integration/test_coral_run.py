"""A real Coral run: registry, simulator replicas and peers over real sockets."""

import json
import subprocess
import sys
from collections import Counter

from tests.conftest import read_records, run_slurmgen, slurmgen_processes

AGENT_ROLES = {"teacher", "student"}


def test_coral_run_writes_conversations_and_metrics(run_dir):
    run_slurmgen("workflow=coral", "dataset.limit=60", f"run.dir={run_dir}", "llm.time_scale=200")
    recs = read_records(run_dir)
    assert len(recs) == 60
    assert len({r.task_id for r in recs}) == 60
    assert {r.status for r in recs} == {"ok"}
    reasons = Counter(r.reason for r in recs)
    assert set(reasons) == {"agreement", "max_turns"}, reasons  # both real terminations occur
    for r in recs:
        roles = [t.role for t in r.history]
        assert roles[:2] == ["student", "teacher"]  # the templated opening, then the teacher
        agent_turns = sum(role in AGENT_ROLES for role in roles) - 1
        assert agent_turns == roles.count("extractor") == roles.count("matcher") == r.metrics["rated_turns"]
        if r.reason == "max_turns":
            assert agent_turns == 20 and r.metrics["agreement"] == 0.0
        else:
            assert r.metrics["agreement"] == 1.0 and agent_turns <= 20
        assert r.usage["teacher"].requests + r.usage["student"].requests == agent_turns
        assert "matcher" not in r.usage  # no LLM call
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["workflow"] == "coral" and summary["tasks_total"] == 60 and summary["tasks_ok"] == 60
    metrics = summary["metrics"]
    for key in ("agreement", "agreement_correctness", "conv_err", "error_rate", "total_turns", "t_len", "s_len",
                "conv_len", "valid_answer_rate"):
        assert key in metrics, key
    assert 0 < metrics["agreement_correctness"] < metrics["agreement"] < 1
    assert metrics["conv_err"] == 0 and metrics["error_rate"] == 0
    assert 2 <= metrics["total_turns"] <= 20
    assert summary["reasons"] == dict(reasons)
    assert summary["tokens_per_s"] > 0
    assert slurmgen_processes(run_dir) == []


def test_teacher_and_student_on_their_own_pools(run_dir):
    """`llms=teacher_student`: the teacher talks to a 70B pool, the student (and extractor) to the 8B."""
    run_slurmgen("workflow=coral", "llms=teacher_student", "dataset.limit=30", f"run.dir={run_dir}",
                  "llm.time_scale=200", "llms.teacher.time_scale=200", "llms.teacher.replicas=1")
    recs = read_records(run_dir)
    assert len({r.task_id for r in recs}) == len(recs) == 30 and {r.status for r in recs} == {"ok"}
    llm_turns = [t for r in recs for t in r.history if t.role in ("teacher", "student", "extractor") and t.model]
    teacher = [(t.pool, t.model) for t in llm_turns if t.role == "teacher"]
    others = [(t.pool, t.model) for t in llm_turns if t.role != "teacher"]
    assert teacher and set(teacher) == {("teacher", "sim-llama-3.1-70b")}
    assert others and set(others) == {("default", "sim-llama-3.1-8b")}
    assert all(r.usage["teacher"].model == "sim-llama-3.1-70b" and r.usage["student"].model == "sim-llama-3.1-8b"
               for r in recs)
    pools = json.loads((run_dir / "summary.json").read_text())["usage_by_pool"]
    assert set(pools) == {"default", "teacher"}
    assert pools["teacher"]["model"] == "sim-llama-3.1-70b" and pools["teacher"]["requests"] == len(teacher)
    assert pools["default"]["requests"] == len(others) and pools["default"]["errors"] == 0
    assert pools["teacher"]["mean_latency_s"] > 0 and pools["default"]["mean_latency_s"] > 0
    status = subprocess.run([sys.executable, "-m", "slurmgen", "status", str(run_dir)], capture_output=True,
                            text=True, check=True).stdout
    assert "LLM pool teacher (sim-llama-3.1-70b)" in status and "LLM pool default (sim-llama-3.1-8b)" in status
    assert (run_dir / "logs" / "llm-teacher-0.log").exists() and not (run_dir / "logs" / "llm-teacher-1.log").exists()

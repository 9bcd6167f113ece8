"""Structured outputs per role (off by default): NR's score and question replies requested
by JSON schema and read as bare JSON; Coral's extractor constrained to its answers. On the
simulator, which answers a json_schema request with the schema's object alone."""

from __future__ import annotations

import json
from pathlib import Path

from slurmgen.exitcodes import Exit
from tests.conftest import read_records, run_slurmgen


def test_nr_score_and_question_as_json_objects(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_slurmgen("workflow=nr", "workflow.structured=[score,question]", "dataset.limit=40", f"run.dir={run_dir}",
                 "run.progress=false", "llm.time_scale=300", timeout=240)
    recs = read_records(run_dir)
    assert len(recs) == 40
    reasons = {r.reason for r in recs}
    assert "success" in reasons and "filter_by_score_wo_json" not in reasons
    assert "filter_by_question_wo_json" not in reasons
    for r in recs:
        for turn in r.history:
            if turn.role in ("score", "question"):
                assert turn.content.startswith("{") and "```" not in turn.content  # bare JSON, read as such
                assert json.loads(bytes(turn.data)) == json.loads(turn.content) or turn.role == "score"


def test_unknown_structured_role_is_refused(tmp_path: Path):
    proc = run_slurmgen("workflow=nr", "workflow.structured=[filter]", f"run.dir={tmp_path / 'run'}", check=False)
    assert proc.returncode == Exit.REFUSED and "filter cannot be structured; valid: score, question" in proc.stderr


def test_coral_extractor_constrained_to_its_answers(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_slurmgen("workflow=coral", "workflow.structured_extractor=true", "dataset.limit=6", f"run.dir={run_dir}",
                 "run.progress=false", "llm.time_scale=300", timeout=240)
    recs = read_records(run_dir)
    assert len(recs) == 6
    extractions = [(t.content, json.loads(bytes(t.data))) for r in recs for t in r.history if t.role == "extractor"]
    assert extractions
    for content, data in extractions:
        answer = json.loads(content)["answer"]
        assert data["verdict"] == ("not_sure" if answer == "not sure yet" else "letter")
        assert answer == "not sure yet" or data["answer"] == answer.strip("()")

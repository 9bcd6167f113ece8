"""A reply cut at max_tokens is marked: the turn keeps finish_reason, the role's usage counts
it, and summary.json, `slurmgen status` and the report say how many per role."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec

from slurmgen.llm.types import ChatReply, CompletionUsage
from slurmgen.protocol import Orchestrator
from slurmgen.records import Record
from slurmgen.report import write_report
from slurmgen.run import status
from slurmgen.run.summary import summarize
from slurmgen.rundir import RunDir
from slurmgen.workflow import add_turn


def reply(finish: str, completion: int) -> ChatReply:
    return ChatReply(content="x" * completion, finish_reason=finish, model="m", pool="default",
                     usage=CompletionUsage(prompt_tokens=10, completion_tokens=completion))


def task(task_id: str, finishes: list[tuple[str, str]]) -> Orchestrator:
    orch = Orchestrator(task_id=task_id, row_id=task_id.split(":")[0], trial=0, seed=1, origin="p")
    for role, finish in finishes:
        add_turn(orch, role, reply(finish, 384 if finish == "length" else 20))
    return orch


def record(orch: Orchestrator) -> Record:
    now = time.time()
    return Record(task_id=orch.task_id, row_id=orch.row_id, trial=0, status="rejected", reason="no json",
                  usage=orch.usage, history=orch.history, created_at=now - 1, finished_at=now)


def test_turns_keep_finish_reason_and_usage_counts_truncations():
    orch = task("a:0", [("question", "stop"), ("score", "length"), ("score", "length")])
    assert [t.finish_reason for t in orch.history] == ["stop", "length", "length"]
    assert orch.usage["score"].truncated == 2 and orch.usage["question"].truncated == 0
    line = json.loads(msgspec.json.encode(record(orch)))
    assert [t["finish_reason"] for t in line["history"]] == ["stop", "length", "length"]
    assert line["usage"]["score"]["truncated"] == 2


def test_summary_status_and_report_count_truncations_per_role(tmp_path: Path):
    records = [record(task("a:0", [("question", "stop"), ("score", "length")])),
               record(task("b:0", [("question", "length"), ("score", "length")])),
               record(task("c:0", [("question", "stop"), ("score", "stop")]))]
    summary = summarize(records, workflow="nr", started_at=0, wall_s=1.0, expected=3, metrics=lambda r: {})
    assert summary.truncated_by_role == {"score": 2, "question": 1}
    assert summary.usage_by_role["score"].truncated == 2

    run = RunDir(tmp_path / "run").make()
    (run.results / "shard-0.jsonl").write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in records))
    run.summary.write_bytes(msgspec.json.encode(summary))
    text = status.render(status.collect(run, time.time()), run, time.time())
    assert "replies cut at max_tokens: question 1, score 2" in text
    html = write_report(run.root).read_text()
    assert "cut at max_tokens" in html


def test_token_ids_are_kept_per_turn_and_exported_by_role():
    from slurmgen.export.shapes import resolve

    orch = Orchestrator(task_id="a:0", row_id="a", trial=0, seed=1, origin="p")
    for role, prompt, out in (("user", [1, 2], [3]), ("assistant", [1, 2, 3, 4], [5, 6])):
        r = reply("stop", 2)
        r.prompt_token_ids, r.token_ids = prompt, out
        add_turn(orch, role, r)
    add_turn(orch, "env", None, data={"ok": True})
    rec = record(orch)
    line = json.loads(msgspec.json.encode(rec))
    assert line["history"][1]["prompt_token_ids"] == [1, 2, 3, 4] and "token_ids" not in line["history"][2]
    row = resolve("tokens", {}, "any")(msgspec.json.decode(msgspec.json.encode(rec), type=Record))
    assert row == {"task_id": "a:0", "status": "rejected", "turns": [
        {"role": "user", "prompt_token_ids": [1, 2], "token_ids": [3], "finish_reason": "stop", "model": "m"},
        {"role": "assistant", "prompt_token_ids": [1, 2, 3, 4], "token_ids": [5, 6], "finish_reason": "stop",
         "model": "m"}]}
    assert resolve("tokens", {}, "any")(record(task("b:0", [("score", "stop")]))) is None  # no ids asked for

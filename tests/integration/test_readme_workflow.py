"""The README's custom-workflow example runs as written."""

import json
import re

from tests.conftest import read_records, REPO, run_own_workflow


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- example: myflow.py -->\n```python\n(.*?)```", text, re.S)
    assert match, "the README lost its example"
    return match.group(1)


def test_readme_custom_workflow_runs(tmp_path):
    proc = run_own_workflow(tmp_path, "slogan=myflow:SloganConf", readme_example(),
                            [{"id": str(i), "topic": f"topic {i}"} for i in range(30)],
                            "llm.time_scale=300", "workflow.max_words=10")
    run_dir = tmp_path / "run"
    assert proc.returncode == 0, proc.stderr
    recs = read_records(run_dir)
    assert len(recs) == 30
    assert {r.reason for r in recs} == {"short", "too_long"}
    for r in recs:  # the typed state is the record's output; add_turn stamps its turns
        state = json.loads(bytes(r.output))
        assert state["words"] == len(state["slogan"].split()) > 0
        assert all(t.at >= r.created_at > 0 for t in r.history)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0 < summary["metrics"]["acceptance_rate"] < 1
    assert summary["usage_by_role"]["writer"]["requests"] == 30


# Written from the README's "Adding a workflow" section alone: three roles, no state type
# (orch.state is then a dict), a knob, the seed passed to the LLM.
THREE_ROLES = """
from dataclasses import dataclass, field

import msgspec

from slurmgen.config.types import WorkflowConf
from slurmgen.llm.types import ChatMessage, Sampling
from slurmgen.sim.script import ScriptReply
from slurmgen.workflow import add_turn, finish


class Row(msgspec.Struct):
    id: str
    claim: str

    def row_id(self):
        return self.id


@dataclass
class ReviseConf(WorkflowConf):
    name: str = "revise"
    roles: dict[str, str] = field(default_factory=lambda: {
        "draft": "revise:draft", "critique": "revise:critique", "revise": "revise:revise"})
    transition: str = "revise:transition"
    metrics: str = "revise:metrics"
    row: str = "revise:Row"
    sim_script: str = "revise:script"
    min_words: int = 3


async def draft(orch, ctx):
    row = msgspec.json.decode(orch.row, type=Row)
    reply = await ctx.llm.chat([ChatMessage(role="user", content=f"Argue: {row.claim}")],
                               sampling=Sampling(max_tokens=32), seed=orch.seed)
    add_turn(orch, "draft", reply)
    orch.state["draft"] = reply.content


async def critique(orch, ctx):
    prompt = [ChatMessage(role="user", content="Critique: " + orch.state["draft"])]
    reply = await ctx.llm.chat(prompt, sampling=Sampling(max_tokens=32), seed=orch.seed)
    add_turn(orch, "critique", reply)
    orch.state["critique"] = reply.content


async def revise(orch, ctx):
    prompt = [ChatMessage(role="user", content=orch.state["draft"] + " / " + orch.state["critique"])]
    reply = await ctx.llm.chat(prompt, sampling=Sampling(max_tokens=32), seed=orch.seed)
    add_turn(orch, "revise", reply)
    orch.state["final"] = reply.content
    if len(reply.content.split()) >= ctx.conf.min_words:
        finish(orch, "ok", "revised")
    else:
        finish(orch, "rejected", "too_short")


def transition(orch):
    return {0: "draft", 1: "critique", 2: "revise"}.get(len(orch.history))


def metrics(records):
    return {"revised": sum(r.status == "ok" for r in records)}


def script(request, rng):
    return ScriptReply(content=" ".join(["point"] * rng.randint(1, 6)))
"""


def test_a_three_role_workflow_written_from_the_readme_runs(tmp_path):
    proc = run_own_workflow(tmp_path, "revise=revise:ReviseConf", THREE_ROLES,
                            [{"id": f"c{i}", "claim": f"claim {i}"} for i in range(24)], "llm.time_scale=300",
                            "run.trials=2")
    run_dir = tmp_path / "run"
    assert proc.returncode == 0, proc.stderr
    recs = read_records(run_dir)
    assert len({r.task_id for r in recs}) == len(recs) == 48
    assert {r.reason for r in recs} == {"revised", "too_short"}
    for r in recs:
        state = json.loads(bytes(r.output))
        assert set(state) == {"draft", "critique", "final"}
        assert [t.role for t in r.history] == ["draft", "critique", "revise"]
        assert state["final"] == r.history[-1].content
        assert set(r.usage) == {"draft", "critique", "revise"}

"""The README's custom-workflow example runs as written."""

import json
import re

from tests.conftest import REPO, read_records, run_own_workflow


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- example: myflow.py -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "the README lost its example"
    return match.group(1)


def test_readme_custom_workflow_runs(tmp_path):
    proc = run_own_workflow(tmp_path, "slogan=myflow:WORKFLOW", readme_example(),
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
# (task.state is then a dict), a knob, the seed passed to the LLM.
THREE_ROLES = """
from dataclasses import dataclass, field

import msgspec

from slurmgen.workflow import ChatMessage, Sampling, ScriptReply, Status, Workflow, WorkflowConf, add_turn, finish


class Row(msgspec.Struct):
    id: str
    claim: str

    def row_id(self):
        return self.id


@dataclass
class ReviseConf(WorkflowConf):
    name: str = "revise"
    min_words: int = 3


async def draft(task, ctx):
    reply = await ctx.llm.chat([ChatMessage(role="user", content=f"Argue: {task.row.claim}")],
                               sampling=Sampling(max_tokens=32), seed=task.seed)
    add_turn(task, "draft", reply)
    task.state["draft"] = reply.content


async def critique(task, ctx):
    prompt = [ChatMessage(role="user", content="Critique: " + task.state["draft"])]
    reply = await ctx.llm.chat(prompt, sampling=Sampling(max_tokens=32), seed=task.seed)
    add_turn(task, "critique", reply)
    task.state["critique"] = reply.content


async def revise(task, ctx):
    prompt = [ChatMessage(role="user", content=task.state["draft"] + " / " + task.state["critique"])]
    reply = await ctx.llm.chat(prompt, sampling=Sampling(max_tokens=32), seed=task.seed)
    add_turn(task, "revise", reply)
    task.state["final"] = reply.content
    if len(reply.content.split()) >= ctx.conf.min_words:
        finish(task, Status.OK, "revised")
    else:
        finish(task, Status.REJECTED, "too_short")


def transition(task):
    return {0: "draft", 1: "critique", 2: "revise"}.get(len(task.history))


def metrics(records):
    return {"revised": sum(r.status == Status.OK for r in records)}


def script(request, rng):
    return ScriptReply(content=" ".join(["point"] * rng.randint(1, 6)))


WORKFLOW = Workflow(name="revise", conf=ReviseConf, roles={"draft": draft, "critique": critique, "revise": revise},
                    transition=transition, metrics=metrics, row=Row, sim_scripts={"default": script})
"""


def test_a_three_role_workflow_written_from_the_readme_runs(tmp_path):
    proc = run_own_workflow(tmp_path, "revise=revise:WORKFLOW", THREE_ROLES,
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

"""The Coral simulator script, and whole conversations over the built-in set (unit tier).

The LLM is a fake ChatClient that calls ``script.respond`` in-process (no simulator
server, no HTTP, no peers); the transition loop is driven by hand.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections import Counter
from functools import cache

import msgspec
import pytest

from slurmgen.agents.coral import WORKFLOW, flow, roles, script
from slurmgen.agents.coral.conf import AgreementRule, CoralConf
from slurmgen.agents.coral.data import Question, builtin_path
from slurmgen.agents.coral.parse import extract
from slurmgen.agents.coral.prompting import agent_view, extractor_messages, load_prompt
from slurmgen.agents.coral.state import CoralState
from slurmgen.llm.types import ChatMessage, ChatReply, CompletionUsage, Sampling
from slurmgen.protocol import Orchestrator, Turn
from slurmgen.records import Record
from slurmgen.sim.content import count_tokens
from slurmgen.sim.script import ScriptRequest
from slurmgen.workflow import RoleContext
from tests.drive import drive

ROLES = {"teacher": roles.teacher_role, "student": roles.student_role,
         "extractor": roles.extractor_role, "matcher": roles.matcher_role}


class ScriptedChat:
    """A ChatClient answering from the Coral content script, with token usage."""

    async def chat(self, messages: list[ChatMessage], *, sampling: Sampling, seed: int | None = None,
                   **_: object) -> ChatReply:  # fmt: skip
        req = ScriptRequest(model="sim", messages=messages, max_tokens=sampling.max_tokens, seed=seed)
        reply = script.respond(req, random.Random(seed))
        assert reply is not None and reply.content is not None
        prompt = sum(count_tokens(m.content or "") for m in messages)
        usage = CompletionUsage(prompt_tokens=prompt, completion_tokens=count_tokens(reply.content))
        return ChatReply(content=reply.content, finish_reason=reply.finish_reason, usage=usage)


async def converse(line: bytes, conf: CoralConf, seed: int) -> Record:
    q = msgspec.json.decode(line, type=Question)
    orch = Orchestrator(task_id=f"{q.row_id()}:0", row_id=q.row_id(), trial=0, seed=seed, origin="p0",
                        row=msgspec.Raw(line))
    ctx = RoleContext(llm=ScriptedChat(), conf=conf, log=logging.getLogger("test"))  # type: ignore[arg-type]
    await drive(WORKFLOW, ctx, orch)
    return Record(task_id=orch.task_id, row_id=orch.row_id, trial=0, status=orch.status, reason=orch.reason,
                  usage=orch.usage, metrics=orch.metrics, output=orch.state, history=orch.history)


def run_task(line: bytes, conf: CoralConf, seed: int = 3) -> Record:
    return asyncio.run(converse(line, conf, seed))


def lines() -> list[bytes]:
    return open(builtin_path(), "rb").read().splitlines()


@cache
def builtin_run(rule: str) -> tuple[Record, ...]:
    conf = CoralConf(agreement_rule=AgreementRule(rule))

    async def run_all() -> list[Record]:
        return [await converse(line, conf, 3) for line in lines()]

    return tuple(asyncio.run(run_all()))


def question(i: int = 0) -> Question:
    return msgspec.json.decode(lines()[i], type=Question)


def agent_request(history: list[Turn], speaker: str, max_tokens: int = 1024) -> ScriptRequest:
    return ScriptRequest(model="sim", messages=agent_view(history, speaker, load_prompt("agent.txt")),
                         max_tokens=max_tokens)


# --- the script on single requests ---------------------------------------------


def test_other_workflows_requests_get_generic_content():
    req = ScriptRequest(model="sim", messages=[ChatMessage(role="system", content="You are helpful."),
                                               ChatMessage(role="user", content="hi")])
    assert script.respond(req, random.Random(0)) is None


def test_replies_depend_on_the_conversation_not_on_the_rng():
    history = [Turn(role="student", content=roles.opening(question(), "opening.txt"))]
    req = agent_request(history, "teacher")
    a, b = script.respond(req, random.Random(1)), script.respond(req, random.Random(2))
    assert a is not None and b is not None and a.content == b.content


def test_agent_replies_end_with_an_answer_or_a_hedge_and_vary_in_length():
    lengths, endings = [], Counter()
    for i in range(120):
        history = [Turn(role="student", content=roles.opening(question(i), "opening.txt"))]
        reply = script.respond(agent_request(history, "teacher"), random.Random(0))
        assert reply is not None and reply.content and reply.finish_reason == "stop"
        last = reply.content.strip().splitlines()[-1]
        letters = question(i).letters()
        if re.fullmatch(r"The correct answer is \(([A-Z])\)\.", last):
            assert last[-3] in letters
            endings["answer"] += 1
        else:
            assert "not sure yet" in last
            endings["hedge"] += 1
        lengths.append(count_tokens(reply.content))
    assert endings["answer"] > 90 and endings["hedge"] > 0
    assert 45 <= min(lengths) and max(lengths) <= 620
    assert max(lengths) > 4 * min(lengths)  # heterogeneous, as real generations


def test_a_reply_over_max_tokens_is_cut():
    history = [Turn(role="student", content=roles.opening(question(), "opening.txt"))]
    reply = script.respond(agent_request(history, "teacher", max_tokens=20), random.Random(0))
    assert reply is not None and reply.finish_reason == "length" and count_tokens(reply.content or "") == 20


@pytest.mark.parametrize("response, expected", [
    ("Option (C) is tempting. The correct answer is (B).", "B"),
    ("First I thought the correct answer is (A). Now: the correct answer is (D).", "D"),
    ("I'm not sure yet which choice is right.", None),
])
def test_extractor_reads_the_final_answer_in_at_most_32_tokens(response, expected):
    q = question()
    messages = extractor_messages(q, response, "extractor.txt", "extractor_user.txt")
    reply = script.respond(ScriptRequest(model="sim", messages=messages, max_tokens=32), random.Random(0))
    assert reply is not None and reply.content is not None and count_tokens(reply.content) <= 32
    ex = extract(reply.content, "teacher", q.answer)
    if ex.verdict != "invalid":  # a rare deliberate miss
        assert ex.answer == (expected or "")


def test_extractor_sometimes_misses_and_sometimes_is_verbose():
    q = question()
    kinds = Counter()
    for i in range(400):
        messages = extractor_messages(q, f"Take {i}. The correct answer is (A).", "extractor.txt",
                                      "extractor_user.txt")
        content = script.extractor_reply(messages)
        kinds[extract(content, "teacher", "A").verdict, content.startswith("(")] += 1
    assert kinds["letter", True] > 300 and kinds["letter", False] > 0 and kinds["invalid", False] > 0


# --- whole conversations over the built-in set ----------------------------------


@pytest.mark.parametrize("rule", ["matrix", "coral"])
def test_builtin_conversations_reach_real_terminations(rule):
    recs = builtin_run(rule)
    reasons = Counter(r.reason for r in recs)
    assert set(reasons) == {"agreement", "max_turns"} and all(r.status == "ok" for r in recs)
    assert 0.05 < reasons["max_turns"] / len(recs) < 0.35
    m = flow.metrics(list(recs))
    assert 0.3 < m["agreement_correctness"] < m["agreement"] < 0.95
    assert 0.8 < m["valid_answer_rate"] < 1.0
    turns = Counter(len(flow.agent_turns(r.history)) for r in recs)
    assert max(turns) == 20 and min(turns) == 2 and len(turns) > 10
    assert 100 < m["t_len"] < 400 and 100 < m["s_len"] < 400
    for r in recs:
        state = msgspec.json.decode(r.output, type=CoralState)
        assert len(state.extractions) == r.metrics["rated_turns"] == len(flow.agent_turns(r.history))
        assert state.rule == rule
        assert r.usage["extractor"].completion_tokens <= 32 * r.usage["extractor"].requests


def test_builtin_conversations_include_switches_hedges_and_wrong_agreements():
    recs = builtin_run("matrix")
    verdicts = Counter(e.verdict for r in recs for e in msgspec.json.decode(r.output, type=CoralState).extractions)
    assert verdicts["not_sure"] > 0 and verdicts["invalid"] > 0
    wrong = [r for r in recs if r.metrics["agreement"] and not r.metrics["agreement_correctness"]]
    assert wrong  # agents also agree on a wrong answer
    switched = sum("You're right" in t.content or "I agree that my earlier" in t.content
                   for r in recs for t in r.history)
    assert switched > 0


def test_the_two_rules_give_different_conversations_on_some_questions():
    by_matrix, by_coral = builtin_run("matrix"), builtin_run("coral")
    longer = [(a.task_id, a.metrics["rated_turns"], b.metrics["rated_turns"]) for a, b in zip(by_matrix, by_coral)
              if a.metrics["rated_turns"] != b.metrics["rated_turns"]]
    assert longer
    # Coral's rule is stricter: a conversation never ends sooner under it
    assert all(coral_turns > matrix_turns for _, matrix_turns, coral_turns in longer)


def test_a_conversation_is_reproducible():
    line = lines()[17]
    a, b = run_task(line, CoralConf(), seed=1), run_task(line, CoralConf(), seed=99)
    assert [t.content for t in a.history] == [t.content for t in b.history]

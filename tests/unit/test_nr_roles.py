"""NR roles and the simulator content script, over the built-in dataset.

UNIT TIER: the LLM is a fake ChatClient that calls ``script.respond`` in-process (no
simulator server, no HTTP, no peers) and the transition loop is driven by hand. The
same workflow over real processes and sockets is the integration tier's job.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from slurmgen.agents.nr import WORKFLOW, parse, roles, script
from slurmgen.agents.nr.conf import NRConf
from slurmgen.agents.nr.data import Document, builtin_path
from slurmgen.agents.nr.prompting import stage_messages
from slurmgen.agents.nr.state import NRState
from slurmgen.errors import LLMError
from slurmgen.llm.types import ChatMessage, ChatReply, CompletionUsage, Sampling
from slurmgen.protocol import Orchestrator
from slurmgen.sim.content import count_tokens
from slurmgen.sim.script import ScriptRequest
from slurmgen.workflow import RoleContext
from tests.drive import drive

ROLES = {"filter": roles.filter_role, "score": roles.score_role, "question": roles.question_role}
CONF = NRConf()


class ScriptedChat:
    """A ChatClient answering from the NR content script; it records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Sampling, int | None, str | None]] = []

    async def chat(self, messages: list[ChatMessage], *, sampling: Sampling, seed: int | None = None,
                   sticky_key: str | None = None, **_: object) -> ChatReply:  # fmt: skip
        req = ScriptRequest(model="sim", messages=messages, max_tokens=sampling.max_tokens, seed=seed)
        reply = script.respond(req, random.Random(seed))
        assert reply is not None and reply.content is not None
        self.calls.append((messages[0].content or "", sampling, seed, sticky_key))
        prompt = sum(count_tokens(m.content or "") for m in messages)
        usage = CompletionUsage(prompt_tokens=prompt, completion_tokens=count_tokens(reply.content))
        return ChatReply(content=reply.content, finish_reason=reply.finish_reason, usage=usage)


class FailingChat:
    async def chat(self, messages: list[ChatMessage], **_: object) -> ChatReply:
        raise LLMError("replica gone after 4 retries")


def en_of(line: bytes) -> float:
    return msgspec.json.decode(line, type=Document).en()


def task(line: bytes, seed: int = 7) -> Orchestrator:
    return Orchestrator(task_id="r:0", row_id="r", trial=0, seed=seed, origin="p0", row=msgspec.Raw(line))


async def run_task(orch: Orchestrator, llm: object) -> Orchestrator:
    ctx = RoleContext(llm=llm, conf=CONF, log=logging.getLogger("test"))  # type: ignore[arg-type]
    return await drive(WORKFLOW, ctx, orch)


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        return Path(builtin_path()).read_bytes().splitlines()


@pytest.fixture(scope="module")
def finished(lines: list[bytes]) -> list[Orchestrator]:
    async def all_tasks() -> list[Orchestrator]:
        return [await run_task(task(line, seed=i), ScriptedChat()) for i, line in enumerate(lines)]

    return asyncio.run(all_tasks())


# --- the script alone: prompt -> respond -> parse -------------------------------


def reply_to(stage: str, text: str, max_tokens: int = 20480) -> str:
    req = ScriptRequest(model="sim", messages=stage_messages(f"{stage}.txt", text, 0), max_tokens=max_tokens)
    reply = script.respond(req, random.Random(0))
    assert reply is not None and reply.content is not None
    return reply.content


def test_each_stage_reply_parses_into_every_reason(lines: list[bytes]) -> None:
    texts = [msgspec.json.decode(line)["text"] for line in lines]
    filter_replies = Counter(reply_to("filter", t) for t in texts)
    score_reasons = Counter(parse.judge_score(reply_to("score", t))[0] for t in texts)
    question_reasons = Counter(parse.judge_question(reply_to("question", t))[0] for t in texts)
    assert set(filter_replies) == {"Yes", "No"}
    assert set(score_reasons) == {None, "filter_by_score", "filter_by_score_wo_json"}
    assert set(question_reasons) == {
        "success", "filter_by_no_question", "filter_by_no_answer",
        "filter_by_no_boxed_answer", "filter_by_question_wo_json",
    }  # fmt: skip


def test_script_is_deterministic_and_lengths_vary(lines: list[bytes]) -> None:
    texts = [msgspec.json.decode(line)["text"] for line in lines[:200]]
    assert [reply_to("score", t) for t in texts[:20]] == [reply_to("score", t) for t in texts[:20]]
    lengths = [count_tokens(reply_to("question", t)) for t in texts]
    assert min(lengths) < 300 and max(lengths) > 900


def test_script_respects_max_tokens_and_ignores_other_requests() -> None:
    req = ScriptRequest(model="sim", messages=stage_messages("score.txt", "word " * 300, 0), max_tokens=16)
    reply = script.respond(req, random.Random(0))
    assert reply is not None and reply.finish_reason == "length" and count_tokens(reply.content or "") == 16
    other = ScriptRequest(model="sim", messages=[ChatMessage(role="user", content="hello")])
    assert script.respond(other, random.Random(0)) is None


# --- the roles (fake LLM) ------------------------------------------------------


def test_builtin_set_reaches_every_termination_reason(finished: list[Orchestrator]) -> None:
    reasons = Counter(o.reason for o in finished)
    assert set(reasons) == {*parse.REJECTIONS, parse.SUCCESS}
    assert all(o.status == ("ok" if o.reason == "success" else "rejected") for o in finished)
    accepted = reasons["success"] / len(finished)
    assert 0.25 < accepted < 0.5


def test_language_gate_makes_no_llm_call(lines: list[bytes]) -> None:
    low = next(line for line in lines if en_of(line) < 0.8)
    llm = ScriptedChat()
    orch = asyncio.run(run_task(task(low), llm))
    assert (orch.status, orch.reason, llm.calls) == ("rejected", "filter_by_en", [])
    assert [t.role for t in orch.history] == ["filter"] and orch.usage == {}


def test_history_usage_and_state_of_an_accepted_task(finished: list[Orchestrator]) -> None:
    orch = next(o for o in finished if o.status == "ok")
    assert [t.role for t in orch.history] == ["filter", "score", "question"]
    assert set(orch.usage) == {"filter", "score", "question"}
    assert all(u.requests == 1 and u.completion_tokens > 0 for u in orch.usage.values())
    state = msgspec.json.decode(orch.state, type=NRState)
    assert state.en >= 0.8 and state.scores is not None and state.question is not None
    assert "\\boxed{" in state.question.independent_answer[-1]
    assert msgspec.json.decode(orch.history[2].data, type=parse.ExamQuestion) == state.question


def test_roles_send_stage_sampling_and_task_seed(lines: list[bytes], finished: list[Orchestrator]) -> None:
    index = next(i for i, o in enumerate(finished) if o.status == "ok")
    llm = ScriptedChat()
    asyncio.run(run_task(task(lines[index], seed=99), llm))
    samplings = [call[1] for call in llm.calls]
    assert samplings == [
        Sampling(temperature=1.0, top_p=0.95, max_tokens=8),
        Sampling(temperature=0.2, top_p=0.9, max_tokens=10240),
        Sampling(temperature=0.0, top_p=0.9, max_tokens=20480),
    ]
    assert {call[2] for call in llm.calls} == {99} and {call[3] for call in llm.calls} == {None}


def test_llm_error_propagates(lines: list[bytes]) -> None:
    high = next(line for line in lines if en_of(line) >= 0.8)
    hop = WORKFLOW.new_task(task(high))
    ctx = RoleContext(llm=FailingChat(), conf=CONF, log=logging.getLogger("test"))  # type: ignore[arg-type]
    with pytest.raises(LLMError):
        asyncio.run(roles.filter_role(hop, ctx))
    assert hop.status == "running" and hop.history == []
    orch = asyncio.run(run_task(task(high), FailingChat()))  # the runtime makes it a failed record
    assert orch.status == "failed" and orch.reason.startswith("llm_error: ")

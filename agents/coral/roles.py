"""The four Coral roles (Matrix ``coral_sequential``).

teacher -> extractor -> matcher -> student -> extractor -> matcher -> teacher ...

- ``student`` also speaks first: on an empty history it writes the fixed opening
  (the question and its lettered choices, from a template; no LLM call), so that the
  teacher answers first.
- ``teacher`` and ``student`` send the same system prompt and see the conversation
  from their own side (``prompting.agent_view``).
- ``extractor`` asks an LLM which choice the last agent turn commits to.
- ``matcher`` (no LLM) applies the configured agreement rule, counts rated turns and
  ends the conversation on agreement or at ``max_turns``.

Every LLM request carries a sticky key ``<role>_<task id>`` (unless
``sticky_routing`` is off) so that one conversation's requests of one role reuse one
replica's prefix cache. An ``LLMError`` propagates: the runtime turns it into a
failed record (Matrix's ``conv_err``).
"""

from __future__ import annotations

import time

import msgspec

from slurmgen.config.types import SamplingConf
from slurmgen.llm.types import ChatMessage, ChatReply, Sampling
from slurmgen.protocol import Orchestrator
from slurmgen.workflow import RoleContext, add_turn, finish

from .conf import AgreementRule
from .data import Question
from .parse import AGENTS, extract, match
from .prompting import agent_view, extractor_messages, load_prompt, opening
from .state import CoralState, load_state, store_state

AGREEMENT = "agreement"  # termination reasons (the record's `reason`)
MAX_TURNS = "max_turns"

_rows = msgspec.json.Decoder(Question)


class Opening(msgspec.Struct, kw_only=True):
    """Marks the student's templated first message in the history."""

    opening: bool = True


def question_of(orch: Orchestrator) -> Question:
    return _rows.decode(orch.row)


def sticky_key(ctx: RoleContext, role: str, orch: Orchestrator) -> str | None:
    return f"{role}_{orch.task_id}" if ctx.conf.sticky_routing else None


async def _ask(orch: Orchestrator, ctx: RoleContext, role: str, messages: list[ChatMessage],
               sampling: SamplingConf) -> ChatReply:
    params = Sampling(temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens)
    return await ctx.llm.chat(messages, sampling=params, seed=orch.seed, sticky_key=sticky_key(ctx, role, orch))


async def _speak(orch: Orchestrator, ctx: RoleContext, role: str) -> None:
    messages = agent_view(orch.history, role, load_prompt(ctx.conf.agent_prompt))
    reply = await _ask(orch, ctx, role, messages, ctx.conf.agent_sampling)
    add_turn(orch, role, reply, at=time.time())


async def teacher_role(orch: Orchestrator, ctx: RoleContext) -> None:
    await _speak(orch, ctx, "teacher")


async def student_role(orch: Orchestrator, ctx: RoleContext) -> None:
    """The templated opening on an empty history; an LLM turn afterwards."""
    if orch.history:
        await _speak(orch, ctx, "student")
        return
    q = question_of(orch)
    turn = add_turn(orch, "student", None, data=Opening(), at=time.time())
    turn.content = opening(q, ctx.conf.opening_prompt)
    store_state(orch, CoralState(gold=q.answer, rule=AgreementRule(ctx.conf.agreement_rule).value))


async def extractor_role(orch: Orchestrator, ctx: RoleContext) -> None:
    """Which choice the last agent turn commits to: ``(X)``, "not sure yet", or invalid."""
    last = orch.history[-1]
    if last.role not in AGENTS:
        raise RuntimeError(f"the extractor follows an agent turn, not {last.role!r}")
    q = question_of(orch)
    messages = extractor_messages(q, last.content, ctx.conf.extractor_prompt, ctx.conf.extractor_user_prompt)
    reply = await _ask(orch, ctx, "extractor", messages, ctx.conf.extractor_sampling)
    extraction = extract(reply.content, last.role, q.answer)
    state = load_state(orch)
    state.extractions.append(extraction)
    store_state(orch, state)
    add_turn(orch, "extractor", reply, data=extraction, at=time.time())


def rated_turns(orch: Orchestrator) -> int:
    """Matrix's count: the matcher turns so far, plus this one."""
    return sum(1 for t in orch.history if t.role == "matcher") + 1


async def matcher_role(orch: Orchestrator, ctx: RoleContext) -> None:
    """Agreement by the configured rule; done on agreement or after ``max_turns``."""
    state = load_state(orch)
    decision = match(state.extractions, ctx.conf.agreement_rule, state.gold, rated_turns(orch))
    state.matched_answer = decision.matched_answer
    state.agreement = decision.agreement
    state.agreement_correctness = decision.agreement_correctness
    state.rated_turns = decision.rated_turns
    store_state(orch, state)
    orch.metrics = {
        "agreement": float(decision.agreement),
        "agreement_correctness": float(decision.agreement_correctness),
        "rated_turns": float(decision.rated_turns),
    }
    add_turn(orch, "matcher", None, data=decision, at=time.time())
    if decision.agreement:
        finish(orch, "ok", AGREEMENT)
    elif decision.rated_turns >= ctx.conf.max_turns:
        finish(orch, "ok", MAX_TURNS)

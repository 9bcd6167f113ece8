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

from slurmgen.workflow import (
    ChatMessage,
    ChatReply,
    RoleContext,
    Sampling,
    Status,
    Task,
    add_turn,
    finish,
)

from .conf import AgreementRule, CoralConf
from .data import Question
from .parse import AGENTS, extract, extractor_format, match
from .prompting import agent_view, extractor_messages, load_prompt, opening
from .state import CoralState

AGREEMENT = "agreement"  # termination reasons (the record's `reason`)
MAX_TURNS = "max_turns"

CoralTask = Task[Question, CoralState]
CoralContext = RoleContext[CoralConf]


class Opening(msgspec.Struct, kw_only=True):
    """Marks the student's templated first message in the history."""

    opening: bool = True


def sticky_key(ctx: CoralContext, role: str, task: CoralTask) -> str | None:
    return f"{role}_{task.task_id}" if ctx.conf.sticky_routing else None


async def _ask(task: CoralTask, ctx: CoralContext, role: str, messages: list[ChatMessage],
               sampling: Sampling, response_format: dict | None = None) -> ChatReply:
    return await ctx.llm.chat(messages, sampling=sampling, seed=task.seed, sticky_key=sticky_key(ctx, role, task),
                              response_format=response_format)


async def _speak(task: CoralTask, ctx: CoralContext, role: str) -> None:
    messages = agent_view(task.history, role, load_prompt(ctx.conf.agent_prompt))
    reply = await _ask(task, ctx, role, messages, ctx.conf.agent_sampling)
    add_turn(task, role, reply, at=time.time())


async def teacher_role(task: CoralTask, ctx: CoralContext) -> None:
    await _speak(task, ctx, "teacher")


async def student_role(task: CoralTask, ctx: CoralContext) -> None:
    """The templated opening on an empty history; an LLM turn afterwards."""
    if task.history:
        await _speak(task, ctx, "student")
        return
    q = task.row
    turn = add_turn(task, "student", None, data=Opening(), at=time.time())
    turn.content = opening(q, ctx.conf.opening_prompt)
    task.state = CoralState(gold=q.answer, rule=AgreementRule(ctx.conf.agreement_rule).value)


async def extractor_role(task: CoralTask, ctx: CoralContext) -> None:
    """Which choice the last agent turn commits to: ``(X)``, "not sure yet", or invalid."""
    last = task.history[-1]
    if last.role not in AGENTS:
        raise RuntimeError(f"the extractor follows an agent turn, not {last.role!r}")
    q = task.row
    messages = extractor_messages(q, last.content, ctx.conf.extractor_prompt, ctx.conf.extractor_user_prompt)
    fmt = extractor_format(len(q.options)) if ctx.conf.structured_extractor else None
    reply = await _ask(task, ctx, "extractor", messages, ctx.conf.extractor_sampling, fmt)
    extraction = extract(reply.content, last.role, q.answer)
    task.state.extractions.append(extraction)
    add_turn(task, "extractor", reply, data=extraction, at=time.time())


def rated_turns(task: CoralTask) -> int:
    """Matrix's count: the matcher turns so far, plus this one."""
    return sum(1 for t in task.history if t.role == "matcher") + 1


async def matcher_role(task: CoralTask, ctx: CoralContext) -> None:
    """Agreement by the configured rule; done on agreement or after ``max_turns``."""
    state = task.state
    decision = match(state.extractions, ctx.conf.agreement_rule, state.gold, rated_turns(task))
    state.matched_answer = decision.matched_answer
    state.agreement = decision.agreement
    state.agreement_correctness = decision.agreement_correctness
    state.rated_turns = decision.rated_turns
    task.orch.metrics = {
        "agreement": float(decision.agreement),
        "agreement_correctness": float(decision.agreement_correctness),
        "rated_turns": float(decision.rated_turns),
    }
    add_turn(task, "matcher", None, data=decision, at=time.time())
    if decision.agreement:
        finish(task, Status.OK, AGREEMENT)
    elif decision.rated_turns >= ctx.conf.max_turns:
        finish(task, Status.OK, MAX_TURNS)

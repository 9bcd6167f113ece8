"""The three NR roles: filter -> score -> question (Matrix ``nr_curation``).

Each role sends the stage's system prompt and the document text to the LLM, records
its turn, and either rejects the task with the reference's termination reason or
lets the transition move on. An ``LLMError`` from the client propagates: the runtime
turns it into a failed record (Matrix's ``conv_err``).
"""

from __future__ import annotations

import time

import msgspec

from slurmgen.workflow import (
    ChatReply,
    RoleContext,
    Sampling,
    Status,
    Task,
    add_turn,
    finish,
)

from .conf import NRConf
from .data import Document
from .parse import (
    SUCCESS,
    CriteriaScores,
    ExamQuestion,
    judge_classifier,
    judge_en,
    judge_question,
    judge_score,
    response_format,
)
from .prompting import stage_messages
from .state import NRState

NRTask = Task[Document, NRState]
NRContext = RoleContext[NRConf]


class FilterData(msgspec.Struct, kw_only=True):
    """What the filter turn records besides the reply text."""

    en: float


async def _ask(task: NRTask, ctx: NRContext, prompt_file: str, sampling: Sampling,
               schema: type[msgspec.Struct] | None = None) -> ChatReply:
    """One chat completion: the stage's system prompt, then the document text; ``schema``: the reply
    is constrained to a JSON object of that Struct (workflow.structured)."""
    messages = stage_messages(prompt_file, task.row.text, ctx.conf.max_text_chars)
    fmt = response_format(schema) if schema is not None else None
    return await ctx.llm.chat(messages, sampling=sampling, seed=task.seed, sticky_key=None, response_format=fmt)


async def filter_role(task: NRTask, ctx: NRContext) -> None:
    """Language gate (no LLM), then the Yes/No classifier on four criteria."""
    task.state.en = task.row.en()
    reason = judge_en(task.state.en, ctx.conf.filter_en)
    reply = None
    if reason is None:
        reply = await _ask(task, ctx, ctx.conf.filter_prompt, ctx.conf.filter_sampling)
        reason = judge_classifier(reply.content)
    add_turn(task, "filter", reply, data=FilterData(en=task.state.en), at=time.time())
    if reason is not None:
        finish(task, Status.REJECTED, reason)


async def score_role(task: NRTask, ctx: NRContext) -> None:
    """Points rubric; every one of the four criteria must score above zero."""
    bare = "score" in ctx.conf.structured
    reply = await _ask(task, ctx, ctx.conf.score_prompt, ctx.conf.score_sampling, CriteriaScores if bare else None)
    reason, scores = judge_score(reply.content, bare)
    task.state.scores = scores
    add_turn(task, "score", reply, data=scores, at=time.time())
    if reason is not None:
        finish(task, Status.REJECTED, reason)


async def question_role(task: NRTask, ctx: NRContext) -> None:
    """Exam question with a boxed independent answer; success ends the task."""
    bare = "question" in ctx.conf.structured
    reply = await _ask(task, ctx, ctx.conf.question_prompt, ctx.conf.question_sampling,
                       ExamQuestion if bare else None)
    reason, result = judge_question(reply.content, bare)
    add_turn(task, "question", reply, data=result, at=time.time())
    if reason == SUCCESS:
        task.state.question = result
        finish(task, Status.OK, SUCCESS)
    else:
        finish(task, Status.REJECTED, reason)

"""The three NR roles: filter -> score -> question (Matrix ``nr_curation``).

Each role sends the stage's system prompt and the document text to the LLM, records
its turn, and either rejects the task with the reference's termination reason or
lets the transition move on. An ``LLMError`` from the client propagates: the runtime
turns it into a failed record (Matrix's ``conv_err``).
"""

from __future__ import annotations

import time

import msgspec

from slurmgen.config.types import SamplingConf
from slurmgen.llm.types import ChatReply, Sampling
from slurmgen.protocol import Orchestrator
from slurmgen.workflow import RoleContext, add_turn, finish

from .data import Document
from .parse import SUCCESS, judge_classifier, judge_en, judge_question, judge_score
from .prompting import stage_messages
from .state import load_state, store_state

_rows = msgspec.json.Decoder(Document)


class FilterData(msgspec.Struct, kw_only=True):
    """What the filter turn records besides the reply text."""

    en: float


def _document(orch: Orchestrator) -> Document:
    return _rows.decode(orch.row)


async def _ask(
    orch: Orchestrator, ctx: RoleContext, doc: Document, prompt_file: str, sampling: SamplingConf
) -> ChatReply:
    """One chat completion: the stage's system prompt, then the document text."""
    messages = stage_messages(prompt_file, doc.text, ctx.conf.max_text_chars)
    params = Sampling(temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens)
    return await ctx.llm.chat(messages, sampling=params, seed=orch.seed, sticky_key=None)


async def filter_role(orch: Orchestrator, ctx: RoleContext) -> None:
    """Language gate (no LLM), then the Yes/No classifier on four criteria."""
    doc, state = _document(orch), load_state(orch)
    state.en = doc.en()
    reason = judge_en(state.en, ctx.conf.filter_en)
    reply = None
    if reason is None:
        reply = await _ask(orch, ctx, doc, ctx.conf.filter_prompt, ctx.conf.filter_sampling)
        reason = judge_classifier(reply.content)
    add_turn(orch, "filter", reply, data=FilterData(en=state.en), at=time.time())
    store_state(orch, state)
    if reason is not None:
        finish(orch, "rejected", reason)


async def score_role(orch: Orchestrator, ctx: RoleContext) -> None:
    """Points rubric; every one of the four criteria must score above zero."""
    reply = await _ask(orch, ctx, _document(orch), ctx.conf.score_prompt, ctx.conf.score_sampling)
    reason, scores = judge_score(reply.content)
    state = load_state(orch)
    state.scores = scores
    add_turn(orch, "score", reply, data=scores, at=time.time())
    store_state(orch, state)
    if reason is not None:
        finish(orch, "rejected", reason)


async def question_role(orch: Orchestrator, ctx: RoleContext) -> None:
    """Exam question with a boxed independent answer; success ends the task."""
    reply = await _ask(orch, ctx, _document(orch), ctx.conf.question_prompt, ctx.conf.question_sampling)
    reason, result = judge_question(reply.content)
    add_turn(orch, "question", reply, data=result, at=time.time())
    if reason == SUCCESS:
        state = load_state(orch)
        state.question = result
        store_state(orch, state)
        finish(orch, "ok", SUCCESS)
    else:
        finish(orch, "rejected", reason)

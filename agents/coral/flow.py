"""Coral transitions and metrics (Matrix ``CoralOrchestrator`` / ``CoralMetricsAccumulator``)."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

import msgspec

from slurmgen.workflow import Record, Status, Task, Turn

from .data import Question
from .parse import AGENTS, Extraction
from .roles import AGREEMENT, MAX_TURNS
from .state import CoralState

OPENER = "student"  # speaks the templated opening
FIRST_SPEAKER = "teacher"  # the first LLM turn


def transition(task: Task[Question, CoralState]) -> str | None:
    """student (opening) -> teacher -> extractor -> matcher -> student -> extractor ->
    matcher -> teacher ...; the matcher's terminal status (agreement, max_turns) or a
    failure ends it."""
    if task.status is not Status.RUNNING:
        return None
    history = task.history
    if not history:
        return OPENER
    last = history[-1].role
    if last in AGENTS:
        return FIRST_SPEAKER if len(history) == 1 else "extractor"
    if last == "extractor":
        return "matcher"
    if last == "matcher":
        spoke = next(t.role for t in reversed(history) if t.role in AGENTS)
        return "student" if spoke == "teacher" else "teacher"
    return None


_extraction = msgspec.json.Decoder(Extraction | None)


def agent_turns(history: list[Turn]) -> list[Turn]:
    """The teacher's and student's LLM turns: the conversation minus the opening."""
    return [t for t in history if t.role in AGENTS][1:]


def _mean(values: Sequence[float]) -> float:
    return fmean(values) if values else 0.0


def metrics(records: list[Record]) -> dict[str, float]:
    """Matrix's Coral metrics, plus Coral's ``valid_answer_rate``.

    Over every record (a failed one counts as no agreement, as in Matrix):
    ``agreement``, ``agreement_correctness`` (the primary metric), ``total_turns``
    (teacher + student LLM turns), ``error_rate`` (failed fraction), ``conv_err``
    (failed count), ``ended_by_agreement`` / ``ended_by_max_turns`` (fractions).
    Over conversations with at least one LLM turn: ``t_len`` / ``s_len`` (each
    conversation's mean completion tokens per teacher / student turn, averaged) and
    ``conv_len`` (completion tokens of the teacher and student turns per conversation).
    Over every extraction: ``valid_answer_rate`` (a letter, not a hedge or unreadable)
    and ``correct_answer_rate`` (the letter is the gold one).
    """
    total = len(records)
    agreement, correctness, turns = [], [], []
    t_len, s_len, conv_len = [], [], []
    extractions: list[Extraction] = []
    for r in records:
        ok = r.status == Status.OK
        agreement.append(float(ok and r.metrics.get("agreement", 0.0) > 0))
        correctness.append(float(ok and r.metrics.get("agreement_correctness", 0.0) > 0))
        conv = agent_turns(r.history)
        turns.append(float(len(conv)))
        if conv:
            teacher = [t.completion_tokens for t in conv if t.role == "teacher"]
            student = [t.completion_tokens for t in conv if t.role == "student"]
            t_len.append(_mean(teacher))
            s_len.append(_mean(student))
            conv_len.append(float(sum(teacher) + sum(student)))
        read = (_extraction.decode(t.data) for t in r.history if t.role == "extractor")
        extractions.extend(e for e in read if e is not None)
    failed = sum(r.status == Status.FAILED for r in records)
    valid = [e for e in extractions if e.valid]
    return {
        "agreement": _mean(agreement),
        "agreement_correctness": _mean(correctness),
        "conv_err": float(failed),
        "error_rate": failed / total if total else 0.0,
        "total_turns": _mean(turns),
        "t_len": _mean(t_len),
        "s_len": _mean(s_len),
        "conv_len": _mean(conv_len),
        "valid_answer_rate": len(valid) / len(extractions) if extractions else 0.0,
        "correct_answer_rate": sum(e.correct for e in valid) / len(extractions) if extractions else 0.0,
        "ended_by_agreement": sum(r.reason == AGREEMENT for r in records) / total if total else 0.0,
        "ended_by_max_turns": sum(r.reason == MAX_TURNS for r in records) / total if total else 0.0,
    }

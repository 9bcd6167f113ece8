"""NR's export rules: ``sft`` = the generated exam question as prompt, the model's own
step-by-step answer (ending in its boxed result) as completion, and the answer the page
itself holds, when it has one, as ``reference_answer``."""

from __future__ import annotations

from typing import Any

from slurmgen.workflow import Record, default_chat, state_of


def sft(rec: Record) -> dict[str, Any] | None:
    question = state_of(rec).get("question") or {}
    if not question.get("exam_question") or not question.get("independent_answer"):
        return None  # rejected before a question and its answer were written
    return {"task_id": rec.task_id, "prompt": question["exam_question"],
            "completion": "\n".join(question["independent_answer"]),
            "reference_answer": question.get("extracted_answer", ""), "category": question.get("question_category", "")}


SHAPES = {"chat": default_chat, "sft": sft}

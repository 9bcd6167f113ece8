"""Coral's export rules.

- ``chat``: the debate as messages: the student's turns (the opening question first) as
  ``user``, the teacher's as ``assistant``; extractor and matcher turns left out.
- ``sft``: for a debate that reached agreement, the question (the opening) as prompt and the
  last agent turn that commits to the agreed answer as completion.
"""

from __future__ import annotations

from typing import Any

from slurmgen.workflow import Record, state_of

ROLES = {"student": "user", "teacher": "assistant"}


def chat(rec: Record) -> dict[str, Any] | None:
    messages = [{"role": ROLES[t.role], "content": t.content} for t in rec.history if t.role in ROLES]
    return {"task_id": rec.task_id, "messages": messages} if messages else None


def sft(rec: Record) -> dict[str, Any] | None:
    state = state_of(rec)
    agreed = set((state.get("matched_answer") or {}).values())
    if not state.get("agreement") or len(agreed) != 1:
        return None
    answer = agreed.pop()
    agents = [t for t in rec.history if t.role in ROLES]
    committed = {e["role"]: e.get("answer") for e in state.get("extractions", [])}  # the last reading per role
    last = next((t for t in reversed(agents[1:]) if committed.get(t.role) == answer), None)
    if not agents or last is None:
        return None
    return {"task_id": rec.task_id, "prompt": agents[0].content, "completion": last.content, "answer": answer,
            "correct": bool(state.get("agreement_correctness"))}


SHAPES = {"chat": chat, "sft": sft}

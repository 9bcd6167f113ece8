"""Per-task NR state, carried JSON-encoded in ``Orchestrator.state``.

It becomes the record's ``output``: for an accepted document, the language score,
the rubric scores and the exam question.
"""

from __future__ import annotations

import msgspec

from slurmgen.protocol import Orchestrator

from .parse import CriteriaScores, ExamQuestion


class NRState(msgspec.Struct, kw_only=True, omit_defaults=True):
    en: float = 0.0
    scores: CriteriaScores | None = None
    question: ExamQuestion | None = None


def load_state(orch: Orchestrator) -> NRState:
    """The task's NR state; a fresh one before the first role has run."""
    if isinstance(orch.state, NRState):  # decoded for this hop by the runtime (workflow.state)
        return orch.state
    return msgspec.json.decode(orch.state, type=NRState | None) or NRState()


def store_state(orch: Orchestrator, state: NRState) -> None:
    orch.state = msgspec.Raw(msgspec.json.encode(state))

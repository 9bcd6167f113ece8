"""Per-task Coral state, carried JSON-encoded in ``Orchestrator.state``.

It becomes the record's ``output``: the gold letter, every extraction in order, and
the matcher's last decision (the rule used, the answers it matched, agreement,
agreement correctness, rated turns).
"""

from __future__ import annotations

import msgspec

from slurmgen.protocol import Orchestrator

from .parse import Extraction


class CoralState(msgspec.Struct, kw_only=True):
    gold: str = ""
    rule: str = ""
    extractions: list[Extraction] = []
    matched_answer: dict[str, str] = {}
    agreement: bool = False
    agreement_correctness: bool = False
    rated_turns: int = 0


def load_state(orch: Orchestrator) -> CoralState:
    """The task's Coral state; a fresh one before the first role has run."""
    if isinstance(orch.state, CoralState):  # decoded for this hop by the runtime (workflow.state)
        return orch.state
    return msgspec.json.decode(orch.state, type=CoralState | None) or CoralState()


def store_state(orch: Orchestrator, state: CoralState) -> None:
    orch.state = msgspec.Raw(msgspec.json.encode(state))

"""Per-task Coral state, decoded by the runtime for each hop (``task.state``).

It becomes the record's ``output``: the gold letter, every extraction in order, and
the matcher's last decision (the rule used, the answers it matched, agreement,
agreement correctness, rated turns).
"""

from __future__ import annotations

import msgspec

from .parse import Extraction


class CoralState(msgspec.Struct, kw_only=True):
    gold: str = ""
    rule: str = ""
    extractions: list[Extraction] = []
    matched_answer: dict[str, str] = {}
    agreement: bool = False
    agreement_correctness: bool = False
    rated_turns: int = 0

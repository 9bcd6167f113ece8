"""Per-task NR state, decoded by the runtime for each hop (``task.state``).

It becomes the record's ``output``: for an accepted document, the language score,
the rubric scores and the exam question.
"""

from __future__ import annotations

import msgspec

from .parse import CriteriaScores, ExamQuestion


class NRState(msgspec.Struct, kw_only=True, omit_defaults=True):
    en: float = 0.0
    scores: CriteriaScores | None = None
    question: ExamQuestion | None = None

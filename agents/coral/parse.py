"""Reading the extractor's reply, and the matcher's agreement rules (pure logic).

Extraction follows Matrix's ``CoralExtractionAgent.normalize_answer``: a reply that
contains "not sure yet" (any case) is a hedge; otherwise the first ``(X)`` with X a
capital letter is the answer; anything else is invalid. Only a letter is a *valid*
answer; it is *correct* when it equals the gold letter.

Agreement is decided over the extractions so far, one per rated agent turn, in
order:

- ``matrix`` (Matrix ``CoralMatchAgent``): per role, its most recent valid answer,
  scanning back past hedges and invalid turns;
- ``coral`` (original Coral ``stop_conv``): per role, the extraction of its latest
  turn, so a hedge or an invalid turn blocks agreement until that role answers again.

Either way: agreement iff both roles have an answer and the answers are equal;
``agreement_correctness`` iff agreement and the gold letter is among the answers.
"""

from __future__ import annotations

import re

import msgspec

from .conf import AgreementRule

AGENTS = ("teacher", "student")
NOT_SURE = "not sure yet"
LETTER = "letter"  # verdicts of an extraction
HEDGE = "not_sure"
INVALID = "invalid"

_ANSWER = re.compile(r"\(([A-Z])\)")


class Extraction(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The extractor's reading of one agent turn."""

    role: str  # whose turn was read: teacher | student
    verdict: str  # letter | not_sure | invalid
    answer: str = ""  # the letter, when verdict == letter
    correct: bool = False

    @property
    def valid(self) -> bool:
        return self.verdict == LETTER


class Match(msgspec.Struct, kw_only=True):
    """The matcher's decision after one rated turn."""

    matched_answer: dict[str, str]  # role -> the answer the rule attributes to it
    agreement: bool
    agreement_correctness: bool
    rated_turns: int


def extractor_format(options: int) -> dict:
    """A ``response_format`` constraining the extractor to one of its answers: {"answer": "(X)"} or
    {"answer": "not sure yet"} (structured outputs; ``extract`` reads either like plain text)."""
    choices = [f"({chr(ord('A') + i)})" for i in range(options)] + [NOT_SURE]
    schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": choices}},
              "required": ["answer"], "additionalProperties": False}
    return {"type": "json_schema", "json_schema": {"name": "extraction", "schema": schema, "strict": True}}


def extract(reply: str | None, role: str, gold: str) -> Extraction:
    """The extractor's reply -> hedge, first ``(X)`` letter, or invalid."""
    text = reply or ""
    if NOT_SURE in text.lower():
        return Extraction(role=role, verdict=HEDGE)
    found = _ANSWER.search(text)
    if found is None:
        return Extraction(role=role, verdict=INVALID)
    letter = found.group(1)
    return Extraction(role=role, verdict=LETTER, answer=letter, correct=letter == gold)


def beliefs(extractions: list[Extraction], rule: AgreementRule | str) -> dict[str, str]:
    """Per role, the answer the rule attributes to it (roles without one are left out)."""
    rule = AgreementRule(rule)
    out: dict[str, str] = {}
    seen: set[str] = set()
    for ex in reversed(extractions):
        if ex.role in seen:
            continue
        if rule is AgreementRule.coral:
            seen.add(ex.role)  # only the latest turn of each role counts
            if ex.valid:
                out[ex.role] = ex.answer
        elif ex.valid:
            seen.add(ex.role)
            out[ex.role] = ex.answer
    return out


def match(extractions: list[Extraction], rule: AgreementRule | str, gold: str, rated_turns: int) -> Match:
    believed = beliefs(extractions, rule)
    agreement = len(believed) == len(AGENTS) and len(set(believed.values())) == 1
    return Match(
        matched_answer=believed,
        agreement=agreement,
        agreement_correctness=agreement and gold in believed.values(),
        rated_turns=rated_turns,
    )

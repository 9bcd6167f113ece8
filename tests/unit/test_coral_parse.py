"""Coral answer extraction and the two agreement rules, on hand-written transcripts (unit tier)."""

from __future__ import annotations

import itertools

import pytest

from slurmgen.agents.coral.conf import AgreementRule
from slurmgen.agents.coral.parse import (
    HEDGE,
    INVALID,
    LETTER,
    Extraction,
    beliefs,
    extract,
    match,
)

# --- extraction ----------------------------------------------------------------


@pytest.mark.parametrize("reply, verdict, answer", [
    ("(B)", LETTER, "B"),
    ("The answer is (C).", LETTER, "C"),
    ("(J)", LETTER, "J"),
    ("  (A)\n", LETTER, "A"),
    ("(B) or maybe (C)", LETTER, "B"),  # the first match counts
    ("not sure yet", HEDGE, ""),
    ("Not Sure Yet", HEDGE, ""),
    ("(A), though I am not sure yet", HEDGE, ""),  # a hedge wins over a letter
    ("(a)", INVALID, ""),  # capitals only
    ("B", INVALID, ""),
    ("The answer is B.", INVALID, ""),
    ("(AB)", INVALID, ""),
    ("", INVALID, ""),
    (None, INVALID, ""),
])
def test_extraction_normalises_the_extractor_reply(reply, verdict, answer):
    ex = extract(reply, "teacher", gold="B")
    assert (ex.verdict, ex.answer) == (verdict, answer)
    assert ex.role == "teacher"
    assert ex.valid == (verdict == LETTER)
    assert ex.correct == (answer == "B")


def test_only_a_gold_letter_is_correct():
    assert extract("(D)", "student", gold="D").correct
    assert not extract("(C)", "student", gold="D").correct
    assert not extract("not sure yet", "student", gold="D").correct


# --- agreement -----------------------------------------------------------------


def tx(*turns: str, gold: str = "A") -> list[Extraction]:
    """A transcript: extractor replies for alternating turns, teacher first."""
    roles = itertools.cycle(["teacher", "student"])
    return [extract(reply, role, gold) for reply, role in zip(turns, roles)]


MATRIX, CORAL = AgreementRule.matrix, AgreementRule.coral

# (transcript, matrix agreement, coral agreement)
TRANSCRIPTS = [
    (("(A)",), False, False),  # only the teacher has spoken
    (("(A)", "(A)"), True, True),
    (("(A)", "(B)"), False, False),
    (("(A)", "(B)", "(B)"), True, True),  # the teacher comes round
    (("(A)", "not sure yet"), False, False),  # the student has no answer at all
    (("(A)", "???"), False, False),
    # the rules differ: a hedge or an unreadable turn is skipped by Matrix, blocks Coral
    (("(A)", "(B)", "not sure yet", "(A)"), True, False),
    (("(A)", "(B)", "no idea which", "(A)"), True, False),
    (("(A)", "(A)", "not sure yet"), True, False),
    (("(A)", "(B)", "(B)", "not sure yet"), True, False),
    # ... and agree again once both latest turns are letters
    (("(A)", "(B)", "not sure yet", "(A)", "(A)"), True, True),
    # Matrix looks back past several skipped turns
    (("(C)", "(B)", "not sure yet", "???", "not sure yet", "(C)"), True, False),
    # a later letter replaces an earlier one under both rules
    (("(A)", "(A)", "(B)"), False, False),
    (("(A)", "(B)", "(C)", "not sure yet"), False, False),
]


@pytest.mark.parametrize("turns, by_matrix, by_coral", TRANSCRIPTS)
def test_agreement_rules_on_hand_written_transcripts(turns, by_matrix, by_coral):
    extractions = tx(*turns)
    assert match(extractions, MATRIX, "A", len(turns)).agreement is by_matrix
    assert match(extractions, CORAL, "A", len(turns)).agreement is by_coral


def test_matched_answers_per_rule():
    extractions = tx("(A)", "(B)", "not sure yet", "(A)")
    assert beliefs(extractions, MATRIX) == {"teacher": "A", "student": "A"}
    assert beliefs(extractions, CORAL) == {"student": "A"}  # the teacher's latest turn hedged
    assert beliefs(tx("(A)", "???"), MATRIX) == {"teacher": "A"}
    assert beliefs([], MATRIX) == {} == beliefs([], CORAL)


def test_rule_may_be_given_by_name():
    extractions = tx("(A)", "(A)", "not sure yet")
    assert match(extractions, "matrix", "A", 3).agreement
    assert not match(extractions, "coral", "A", 3).agreement
    with pytest.raises(ValueError):
        match(extractions, "majority", "A", 3)


@pytest.mark.parametrize("rule", [MATRIX, CORAL])
def test_agreement_correctness_needs_agreement_on_the_gold_letter(rule):
    right = match(tx("(A)", "(A)"), rule, "A", 2)
    assert right.agreement and right.agreement_correctness
    wrong = match(tx("(B)", "(B)", gold="A"), rule, "A", 2)
    assert wrong.agreement and not wrong.agreement_correctness
    # the gold answer held by one side only is not enough
    split = match(tx("(A)", "(B)"), rule, "A", 2)
    assert not split.agreement and not split.agreement_correctness
    assert right.rated_turns == 2


def test_coral_agreement_implies_matrix_agreement_exhaustively():
    """Over every transcript of up to 6 turns (letters A/B, hedge, invalid): Coral's
    rule is the stricter one, and the two differ only when a latest turn is no letter."""
    replies = ["(A)", "(B)", "not sure yet", "??"]
    differ = 0
    for n in range(1, 7):
        for turns in itertools.product(replies, repeat=n):
            ex = tx(*turns)
            by_matrix = match(ex, MATRIX, "A", n).agreement
            by_coral = match(ex, CORAL, "A", n).agreement
            assert by_matrix or not by_coral, turns
            if by_matrix != by_coral:
                differ += 1
                latest = {e.role: e for e in ex}  # the latest extraction of each role
                assert not all(e.valid for e in latest.values()), turns
    assert differ > 0

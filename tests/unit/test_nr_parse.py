"""NR reply parsing and gate decisions, on hand-written replies (unit tier)."""

from __future__ import annotations

import json

import pytest

from slurmgen.agents.nr import parse
from slurmgen.agents.nr.parse import CriteriaScores, ExamQuestion, ExtractError, extract_json
from slurmgen.agents.nr.prompting import STAGES, clip_text, load_prompt, stage_messages, stage_of

SCORES = '{"criteria_1": 2, "criteria_2": 1, "criteria_3": 0.5, "criteria_4": 1.5}'


def fenced(body: str, tag: str = "json") -> str:
    return f"Step-by-step analysis first.\n\n```{tag}\n{body}\n```\nTrailing words."


def exam(**fields: object) -> str:
    base = {
        "exam_question": "What is 6 times 7?",
        "question_category": "Mathematics",
        "extracted_answer": "therefore the final answer is \\boxed{42}",
        "independent_answer": ["Step 1: multiply.", "Step 2: so \\boxed{42}."],
    }
    return fenced(json.dumps(base | fields))


# --- extract_json ----------------------------------------------------------


@pytest.mark.parametrize("tag", ["json", "JSON", ""])
def test_extract_tagged_and_untagged_blocks(tag: str) -> None:
    scores = extract_json(fenced(SCORES, tag), CriteriaScores)
    assert scores == CriteriaScores(criteria_1=2, criteria_2=1, criteria_3=0.5, criteria_4=1.5)


def test_extract_takes_first_json_block_and_skips_other_languages() -> None:
    text = "```python\nprint('x')\n```\n" + fenced(SCORES) + fenced(SCORES.replace("2", "-1"))
    assert extract_json(text, CriteriaScores).criteria_1 == 2


def test_extract_normalises_keys() -> None:
    body = '{"Criteria 1": 1, " CRITERIA-2 ": 2, "criteria_3": 1, "Criteria_4": 0.5}'
    assert extract_json(fenced(body), CriteriaScores) == CriteriaScores(
        criteria_1=1, criteria_2=2, criteria_3=1, criteria_4=0.5
    )


def test_extract_positional_fallback_fills_unmatched_fields_in_order() -> None:
    body = '{"completeness": 1, "criteria_3": 2, "depth": 0.5, "reasoning": -1}'
    assert extract_json(fenced(body), CriteriaScores) == CriteriaScores(
        criteria_1=1, criteria_2=0.5, criteria_3=2, criteria_4=-1
    )


@pytest.mark.parametrize(
    "text",
    [
        "criteria_1 = 2, no block at all",
        fenced("not json at all"),
        fenced('{"criteria_1": 1, "criteria_2": 1,}'),  # trailing comma
        fenced('{"criteria_1": 1, "criteria_2": 1, "criteria_3": 1}'),  # one missing
        fenced('{"criteria_1": "2", "criteria_2": 1, "criteria_3": 1, "criteria_4": 1}'),
        fenced('{"criteria_1": null, "criteria_2": 1, "criteria_3": 1, "criteria_4": 1}'),
        "```json\n" + SCORES,  # block never closed
    ],
)
def test_extract_failures_raise(text: str) -> None:
    with pytest.raises(ExtractError):
        extract_json(text, CriteriaScores)


def test_extract_exam_question_missing_keys_take_defaults() -> None:
    result = extract_json(fenced('{"exam_question": "Q?", "question_category": null}'), ExamQuestion)
    assert result == ExamQuestion(exam_question="Q?")


# --- gate decisions ----------------------------------------------------------


def test_language_gate_threshold_is_inclusive() -> None:
    assert parse.judge_en(0.7999, 0.8) == "filter_by_en"
    assert parse.judge_en(0.8, 0.8) is None


@pytest.mark.parametrize("reply", ["No", "yes", "Yes.", " Yes", "Yes\n", "", None])
def test_classifier_wants_exactly_yes(reply: str | None) -> None:
    assert parse.judge_classifier(reply) == "filter_by_classifier"
    assert parse.judge_classifier("Yes") is None


def test_score_passes_when_all_positive() -> None:
    reason, scores = parse.judge_score(fenced(SCORES))
    assert reason is None and scores is not None and scores.criteria_4 == 1.5


@pytest.mark.parametrize("bad", ["0", "-1", "-0.5"])
def test_score_rejects_a_non_positive_criterion(bad: str) -> None:
    reason, scores = parse.judge_score(fenced(SCORES.replace("0.5", bad)))
    assert reason == "filter_by_score" and scores is not None


@pytest.mark.parametrize("reply", ["All good: criteria_1=2.", fenced("{oops}"), None])
def test_score_without_json(reply: str | None) -> None:
    assert parse.judge_score(reply) == ("filter_by_score_wo_json", None)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (exam(), "success"),
        (exam(extracted_answer=""), "success"),  # the page may hold no answer
        (exam(exam_question=""), "filter_by_no_question"),
        (exam(exam_question=None), "filter_by_no_question"),
        (exam(independent_answer=[]), "filter_by_no_answer"),
        (exam(independent_answer=["\\boxed{1} early", "so 42"]), "filter_by_no_boxed_answer"),
        (exam(independent_answer="one string, not a list"), "filter_by_question_wo_json"),
        ("The question is: what is 6 times 7?", "filter_by_question_wo_json"),
        (None, "filter_by_question_wo_json"),
    ],
)
def test_question_decisions(reply: str | None, reason: str) -> None:
    assert parse.judge_question(reply)[0] == reason


def test_success_keeps_the_result() -> None:
    reason, result = parse.judge_question(exam())
    assert reason == parse.SUCCESS and result is not None
    assert result.independent_answer[-1].endswith("\\boxed{42}.")


# --- prompts -----------------------------------------------------------------


def test_seventeen_distinct_categories_all_in_the_question_prompt() -> None:
    assert len(set(parse.QUESTION_CATEGORIES)) == 17
    prompt = load_prompt("question.txt")
    assert all(label in prompt for label in parse.QUESTION_CATEGORIES)
    assert "<<" not in prompt


@pytest.mark.parametrize("stage", STAGES)
def test_every_prompt_carries_its_stage_marker(stage: str) -> None:
    messages = stage_messages(f"{stage}.txt", "a document", max_chars=0)
    assert [m.role for m in messages] == ["system", "user"]
    assert stage_of(messages) == stage


def test_clip_text_cuts_at_a_word_boundary() -> None:
    assert clip_text("alpha beta gamma", 0) == "alpha beta gamma"
    assert clip_text("alpha beta gamma", 100) == "alpha beta gamma"
    assert clip_text("alpha beta gamma", 13) == "alpha beta"

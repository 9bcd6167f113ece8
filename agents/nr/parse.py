"""Reading the NR models' replies, and the gate decisions (Matrix ``nr_curation`` rules).

``extract_json`` follows Matrix's tolerant reader: the JSON object in the first fenced
code block (tagged ``json`` or untagged), keys normalised (case, spaces, hyphens), and
values whose keys match no field given, in order, to the fields still unset. A key set
to ``null`` counts as absent. Values are then type-checked (msgspec): a wrong type is
an ``ExtractError``, as Matrix's ``v > 0`` on a string raises and lands in the
``*_wo_json`` branch.

Each ``judge_*`` function returns the termination reason of its gate, with the exact
strings of the reference, or ``None`` when the document passes the gate.
"""

from __future__ import annotations

import functools
import re
from typing import Any, TypeVar

import msgspec

FILTER_BY_EN = "filter_by_en"
FILTER_BY_CLASSIFIER = "filter_by_classifier"
FILTER_BY_SCORE = "filter_by_score"
FILTER_BY_SCORE_WO_JSON = "filter_by_score_wo_json"
FILTER_BY_NO_QUESTION = "filter_by_no_question"
FILTER_BY_NO_ANSWER = "filter_by_no_answer"
FILTER_BY_NO_BOXED_ANSWER = "filter_by_no_boxed_answer"
FILTER_BY_QUESTION_WO_JSON = "filter_by_question_wo_json"
SUCCESS = "success"

REJECTIONS = (
    FILTER_BY_EN,
    FILTER_BY_CLASSIFIER,
    FILTER_BY_SCORE,
    FILTER_BY_SCORE_WO_JSON,
    FILTER_BY_NO_QUESTION,
    FILTER_BY_NO_ANSWER,
    FILTER_BY_NO_BOXED_ANSWER,
    FILTER_BY_QUESTION_WO_JSON,
)

# The labels the question writer chooses from (the prompt lists them).
QUESTION_CATEGORIES = (
    "Mathematics",
    "Statistics",
    "Physics",
    "Chemistry",
    "Biology",
    "Medicine and Health",
    "Earth and Environmental Sciences",
    "Computer Science",
    "Engineering",
    "Economics",
    "Business and Finance",
    "Law",
    "Philosophy",
    "Psychology",
    "Social Sciences",
    "History",
    "Other",
)

BOXED = "\\boxed{"


class ExtractError(ValueError):
    """A reply holds no usable JSON block (missing, malformed or of the wrong shape)."""


class CriteriaScores(msgspec.Struct, kw_only=True):
    criteria_1: float
    criteria_2: float
    criteria_3: float
    criteria_4: float


class ExamQuestion(msgspec.Struct, kw_only=True):
    exam_question: str = ""
    question_category: str = ""
    extracted_answer: str = ""
    independent_answer: list[str] = []


T = TypeVar("T", bound=msgspec.Struct)

# A fenced block: ``` + optional language tag + body + ```.
_FENCE = re.compile(r"```([A-Za-z0-9_+.-]*)[^\S\n]*\n?(.*?)```", re.DOTALL)


def fenced_json(text: str) -> dict[str, Any]:
    """The JSON object of the first ``json``-tagged or untagged block that holds one."""
    for match in _FENCE.finditer(text):
        tag, body = match.group(1).lower(), match.group(2).strip()
        if tag in ("", "json") and body.startswith("{"):
            try:
                data = msgspec.json.decode(body)
            except msgspec.DecodeError as exc:
                raise ExtractError(f"invalid JSON in the fenced block: {exc}") from None
            if not isinstance(data, dict):
                raise ExtractError("the fenced block is not a JSON object")
            return data
    raise ExtractError("no fenced JSON block in the reply")


def normalise_key(key: str) -> str:
    return key.strip().lower().replace(" ", "_").replace("-", "_")


def map_fields(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Match keys to field names, then fill unset fields from unmatched values in order."""
    mapped: dict[str, Any] = {}
    leftovers: list[Any] = []
    for key, value in data.items():
        name = normalise_key(key)
        if name in names:
            mapped[name] = value
        else:
            leftovers.append(value)
    unset = [name for name in names if name not in mapped]
    mapped.update(zip(unset, leftovers, strict=False))  # extras are dropped
    return {name: value for name, value in mapped.items() if value is not None}


@functools.cache
def field_names(struct: type) -> tuple[str, ...]:
    return tuple(field.name for field in msgspec.structs.fields(struct))


def bare_json(text: str) -> dict[str, Any]:
    """The whole reply as one JSON object (a reply constrained by a JSON schema has no fence)."""
    try:
        data = msgspec.json.decode(text.strip() or "null")
    except msgspec.DecodeError as exc:
        raise ExtractError(f"the reply is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ExtractError("the reply is not a JSON object")
    return data


def extract_json(text: str, into: type[T], bare: bool = False) -> T:
    """The first fenced JSON block of ``text`` (``bare``: the whole reply), read tolerantly into ``into``."""
    names = field_names(into)
    mapped = map_fields(bare_json(text) if bare else fenced_json(text), names)
    try:
        return msgspec.convert(mapped, into)
    except msgspec.ValidationError as exc:
        raise ExtractError(f"JSON block does not fit {into.__name__}: {exc}") from None


def response_format(into: type[msgspec.Struct]) -> dict[str, Any]:
    """An OpenAI ``response_format`` asking for a JSON object of ``into``'s fields (structured outputs)."""
    schema = msgspec.json.schema(into)
    body = schema.get("$defs", {}).get(into.__name__, schema)
    body = {**body, "required": list(field_names(into)), "additionalProperties": False}
    body.pop("title", None)
    return {"type": "json_schema", "json_schema": {"name": into.__name__, "schema": body, "strict": True}}


# ---------------------------------------------------------------------------
# Gate decisions


def judge_en(en: float, threshold: float) -> str | None:
    """Gate 0, no LLM: the page's fastText English score."""
    return FILTER_BY_EN if en < threshold else None


def judge_classifier(reply: str | None) -> str | None:
    """The Yes/No classifier passes only on the exact text "Yes" (as the reference)."""
    return None if reply == "Yes" else FILTER_BY_CLASSIFIER


def judge_score(reply: str | None, bare: bool = False) -> tuple[str | None, CriteriaScores | None]:
    """All four criteria must score above zero. ``bare``: the reply was constrained to a JSON object."""
    try:
        scores = extract_json(reply or "", CriteriaScores, bare)
    except ExtractError:
        return FILTER_BY_SCORE_WO_JSON, None
    values = msgspec.structs.astuple(scores)
    return (None if all(v > 0 for v in values) else FILTER_BY_SCORE), scores


def judge_question(reply: str | None, bare: bool = False) -> tuple[str, ExamQuestion | None]:
    """A question, an independent answer, and a \\boxed{} conclusion in its last step."""
    try:
        result = extract_json(reply or "", ExamQuestion, bare)
    except ExtractError:
        return FILTER_BY_QUESTION_WO_JSON, None
    if not result.exam_question:
        return FILTER_BY_NO_QUESTION, result
    if not result.independent_answer:
        return FILTER_BY_NO_ANSWER, result
    if BOXED not in result.independent_answer[-1]:
        return FILTER_BY_NO_BOXED_ANSWER, result
    return SUCCESS, result

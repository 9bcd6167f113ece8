"""The simulator's content script for NR: a scripted "policy" LLM per stage.

The stage is read from the system prompt's marker line. Every decision and every
length is drawn from a ``random.Random`` seeded by a hash of (stage, document text),
not from the simulator's ``rng``: any runner (slurmgen, the batch baseline) given the
same documents gets the same termination reasons and the same token counts, whatever
seeds it uses. The request's ``seed`` (``run.seed`` -> the task's seed) orders the
sentences of the reasoning: another ``run.seed`` gives other texts, the same counts.

Branch rates are fractions of the documents *reaching* the stage. Over the built-in
dataset (11 % below the language gate) they give: filter_by_en 110, filter_by_classifier
277, filter_by_score 137, filter_by_score_wo_json 45, filter_by_no_question 18,
filter_by_no_answer 18, filter_by_no_boxed_answer 17, filter_by_question_wo_json 19,
success 359 (of 1000). Reply lengths are log-uniform (score analysis ~100-800 tokens,
question ~150-1200 tokens, counted with the simulator's ``count_tokens``), as
heterogeneous as real generations; a reply over ``max_tokens`` is cut there
(``finish_reason="length"``), which usually costs its JSON block.
"""

from __future__ import annotations

import hashlib
import math
import random
import re

import msgspec

from slurmgen.workflow import (
    ChatMessage,
    ScriptReply,
    ScriptRequest,
    count_tokens,
    truncate_tokens,
)

from .parse import QUESTION_CATEGORIES, ExamQuestion
from .prompting import stage_of

FILTER_NO_RATE = 0.30
SCORE_NO_JSON_RATE = 0.06
SCORE_NON_POSITIVE_RATE = 0.22
QUESTION_NO_JSON_RATE = 0.04
QUESTION_NO_QUESTION_RATE = 0.04
QUESTION_NO_ANSWER_RATE = 0.04
QUESTION_NO_BOXED_RATE = 0.05

SCORE_TOKENS = (100, 800)
QUESTION_TOKENS = (150, 1200)

# Key spellings of the rubric JSON; the last one only parses by position.
SCORE_KEY_STYLES = (
    ("criteria_1", "criteria_2", "criteria_3", "criteria_4"),
    ("Criteria 1", "Criteria 2", "Criteria 3", "Criteria 4"),
    ("criteria-1", "criteria-2", "criteria-3", "criteria-4"),
    ("completeness", "depth", "correctness", "reasoning"),
)
POSITIVE_POINTS = (0.5, 1, 1.5, 2)
NON_POSITIVE_POINTS = (0, -1, -0.5)

ANALYSIS = [
    "Criterion {i}: the page discusses {kw}, which I weigh against the rubric.",
    "The passage about {kw} states the problem clearly, so one point is earned here.",
    "There is a derivation involving {kw}; I follow it step by step.",
    "The treatment of {kw} relies on material beyond an introductory course.",
    "I could not verify every claim about {kw}, but the main steps are consistent.",
    "The argument chains several inferences, from {kw} to {kw2}.",
    "Parts of the page are navigation text or advertising, which add nothing.",
    "A reply in the thread corrects an earlier mistake about {kw2}, which shows reasoning.",
]
STEPS = [
    "Write down what is given: {kw} and the relation to {kw2}.",
    "Express the unknown in terms of {kw}; this removes one variable.",
    "Apply the standard identity and simplify both sides.",
    "Check the limiting case to make sure the sign is right.",
    "Substitute the numbers, keeping units consistent throughout.",
    "Compare with the alternative approach via {kw2}; both agree.",
]
_WORD = re.compile(r"[A-Za-z][a-z]{5,}")


def _draw(stage: str, text: str, seed: int | None = None) -> random.Random:
    key = f"{stage}\0{text}" if seed is None else f"{stage}\0{text}\0seed={seed}"
    digest = hashlib.sha256(key.encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _pick(rng: random.Random, rates: tuple[tuple[str, float], ...]) -> str:
    """One branch name by cumulative rate, or "ok" for the remainder."""
    roll, edge = rng.random(), 0.0
    for name, rate in rates:
        edge += rate
        if roll < edge:
            return name
    return "ok"


def _tokens(rng: random.Random, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return round(math.exp(rng.uniform(math.log(low), math.log(high))))


def _keywords(text: str) -> list[str]:
    words = sorted({w.lower() for w in _WORD.findall(text[:4000])})
    return words or ["the problem"]


def _prose(rng: random.Random, bank: list[str], keywords: list[str], tokens: int) -> list[str]:
    """Sentences from ``bank`` until about ``tokens`` tokens are written."""
    out: list[str] = []
    written = 0
    while written < tokens:
        kw, kw2 = rng.choice(keywords), rng.choice(keywords)
        out.append(rng.choice(bank).format(i=len(out) % 4 + 1, kw=kw, kw2=kw2))
        written += count_tokens(out[-1])
    return out


def _filter_reply(rng: random.Random, text: str, order: random.Random) -> str:
    return "No" if rng.random() < FILTER_NO_RATE else "Yes"


def _score_block(rng: random.Random, positive: bool) -> str:
    points = [rng.choice(POSITIVE_POINTS) for _ in range(4)]
    if not positive:
        for i in rng.sample(range(4), rng.randint(1, 2)):
            points[i] = rng.choice(NON_POSITIVE_POINTS)
    keys = rng.choices(SCORE_KEY_STYLES, weights=(7, 1, 1, 1))[0]
    return "```json\n" + msgspec.json.encode(dict(zip(keys, points, strict=True))).decode() + "\n```"


def _score_reply(rng: random.Random, text: str, order: random.Random) -> str:
    branch = _pick(rng, (("no_json", SCORE_NO_JSON_RATE), ("non_positive", SCORE_NON_POSITIVE_RATE)))
    sentences = _prose(rng, ANALYSIS, _keywords(text), _tokens(rng, SCORE_TOKENS))
    order.shuffle(sentences)  # the seed's share: the same sentences (and tokens), another text
    analysis = " ".join(sentences)
    if branch == "no_json":
        return analysis + "\n\nFinal scores: criteria_1=1, criteria_2=1, criteria_3=0.5, criteria_4=1."
    return analysis + "\n\n" + _score_block(rng, positive=branch == "ok")


def _steps(rng: random.Random, keywords: list[str], answer: str, boxed: bool, order: random.Random) -> list[str]:
    """A numbered solution whose last step states the answer (boxed unless told not to)."""
    body = _prose(rng, STEPS, keywords, _tokens(rng, QUESTION_TOKENS) * 3 // 4)  # JSON adds ~25 %
    order.shuffle(body)
    last = f"Hence the result is \\boxed{{{answer}}}." if boxed else f"Hence the result is {answer}."
    return [f"Step {i}: {s}" for i, s in enumerate([*body, last], 1)]


def _exam_question(rng: random.Random, keywords: list[str], branch: str, order: random.Random) -> ExamQuestion:
    answer = str(rng.randint(2, 999))
    kw, kw2 = rng.choice(keywords), rng.choice(keywords)
    question = f"Given {kw} and {kw2} as described, determine the value asked for and justify each step."
    extracted = f"Combining {kw} with {kw2}, therefore the final answer is \\boxed{{{answer}}}."
    steps = _steps(rng, keywords, answer, branch != "no_boxed", order)
    return ExamQuestion(
        exam_question="" if branch == "no_question" else question,
        question_category=rng.choice(QUESTION_CATEGORIES),
        extracted_answer=rng.choice(["", extracted]),  # the page may hold no answer
        independent_answer=[] if branch == "no_answer" else steps,
    )


def _question_reply(rng: random.Random, text: str, order: random.Random) -> str:
    branch = _pick(rng, (
        ("no_json", QUESTION_NO_JSON_RATE), ("no_question", QUESTION_NO_QUESTION_RATE),
        ("no_answer", QUESTION_NO_ANSWER_RATE), ("no_boxed", QUESTION_NO_BOXED_RATE),
    ))  # fmt: skip
    result = _exam_question(rng, _keywords(text), branch, order)
    body = msgspec.json.format(msgspec.json.encode(result), indent=2).decode()
    if branch == "no_json":
        return "Here is the question I would ask:\n\n" + body  # no fenced block
    return "```json\n" + body + "\n```"


def _structured_reply(stage: str, rng: random.Random, text: str, order: random.Random) -> str:
    """What a server with structured outputs answers (workflow.structured): the schema's JSON object alone."""
    if stage == "score":
        points = [rng.choice(POSITIVE_POINTS) for _ in range(4)]
        if rng.random() < SCORE_NON_POSITIVE_RATE:
            points[rng.randrange(4)] = rng.choice(NON_POSITIVE_POINTS)
        return msgspec.json.encode({f"criteria_{i}": p for i, p in enumerate(points, 1)}).decode()
    branch = _pick(rng, (("no_question", QUESTION_NO_QUESTION_RATE), ("no_answer", QUESTION_NO_ANSWER_RATE),
                         ("no_boxed", QUESTION_NO_BOXED_RATE)))
    return msgspec.json.encode(_exam_question(rng, _keywords(text), branch, order)).decode()


_WRITERS = {"filter": _filter_reply, "score": _score_reply, "question": _question_reply}


def _document(messages: list[ChatMessage]) -> str:
    return next((m.content or "" for m in messages if m.role == "user"), "")


def respond(req: ScriptRequest, rng: random.Random) -> ScriptReply | None:
    """The reply to one NR request, or None (generic content) for any other request."""
    stage = stage_of(req.messages)
    if stage is None:
        return None
    text = _document(req.messages)
    if req.response_format and stage in ("score", "question"):
        content = _structured_reply(stage, _draw(stage, text), text, _draw(stage, text, req.seed))
    else:
        content = _WRITERS[stage](_draw(stage, text), text, _draw(stage, text, req.seed))
    if count_tokens(content) > req.max_tokens:
        return ScriptReply(content=truncate_tokens(content, req.max_tokens), finish_reason="length")
    return ScriptReply(content=content)

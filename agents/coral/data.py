"""The Coral input row (MMLU-Pro's shape) and the built-in question set.

Only the fields the workflow reads are declared; other fields of a row (MMLU-Pro's
``answer_index``, ``cot_content``, ``category``, ``src``) are ignored when it is
validated, and the row travels unchanged in the task message. A row whose answer
names no option becomes a failed record saying so.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from slurmgen.workflow import cached_jsonl

from .questions import LETTERS, make_questions

BUILTIN_NAME = "coral-builtin-v1.jsonl"  # bump the version when the generator changes
BUILTIN_SIZE = 300
BUILTIN_SEED = 20250417


class Question(msgspec.Struct, kw_only=True):
    question_id: int | str
    question: str
    options: Annotated[list[str], msgspec.Meta(min_length=2, max_length=len(LETTERS))]
    answer: Annotated[str, msgspec.Meta(pattern="^[A-Z]$")]  # the gold letter

    def __post_init__(self) -> None:
        if LETTERS.index(self.answer) >= len(self.options):
            raise ValueError(f"answer {self.answer!r} names no option (there are {len(self.options)})")

    def row_id(self) -> str:
        return str(self.question_id)

    def letters(self) -> str:
        return LETTERS[: len(self.options)]


def format_options(options: list[str]) -> str:
    """The lettered choices, one per line: ``(A) first``, ``(B) second``, ..."""
    return "\n".join(f"({letter}) {option}" for letter, option in zip(LETTERS, options))


def builtin_path(conf: object = None) -> str:
    """Path of the built-in question set, generated on first use (deterministic)."""
    return cached_jsonl(BUILTIN_NAME, lambda: make_questions(BUILTIN_SIZE, BUILTIN_SEED))

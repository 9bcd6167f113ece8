"""The NR prompts: loaded from ``prompts/*.txt`` and turned into chat messages.

The first line of every prompt file is a marker, ``NaturalReasoning curation - stage:
<stage>``; the simulator's content script (``script.py``) uses it to tell the stages
apart. The question prompt's ``<<CATEGORIES>>`` line is filled from
``parse.QUESTION_CATEGORIES`` so that the labels live in one place.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from slurmgen.workflow import ChatMessage

from .parse import QUESTION_CATEGORIES

STAGES = ("filter", "score", "question")
_MARKER = re.compile(r"\ANaturalReasoning curation - stage: (\w+)\s*$", re.MULTILINE)
_CATEGORIES_SLOT = "<<CATEGORIES>>"


@cache
def load_prompt(file_name: str) -> str:
    """A prompt file of this package, with the category list filled in."""
    text = resources.files(__package__).joinpath("prompts", file_name).read_text("utf-8")
    labels = "\n".join(f"   - {label}" for label in QUESTION_CATEGORIES)
    return text.replace(_CATEGORIES_SLOT, labels).strip()


def clip_text(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters at a word boundary (0 = keep)."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return cut[:space] if space > max_chars // 2 else cut


def stage_messages(prompt_file: str, text: str, max_chars: int) -> list[ChatMessage]:
    """System prompt of a stage + the (clipped) document as the user message."""
    return [
        ChatMessage(role="system", content=load_prompt(prompt_file)),
        ChatMessage(role="user", content=clip_text(text, max_chars)),
    ]


def stage_of(messages: list[ChatMessage]) -> str | None:
    """Which NR stage a request belongs to, from its system prompt's marker line."""
    for message in messages:
        if message.role == "system" and message.content:
            match = _MARKER.search(message.content)
            if match and match.group(1) in STAGES:
                return match.group(1)
    return None

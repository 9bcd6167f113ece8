"""The Coral prompts: loaded from ``prompts/*.txt`` and turned into chat messages.

Templates have slots ``<<QUESTION>>``, ``<<OPTIONS>>`` and ``<<RESPONSE>>``, filled in
one pass (a slot-like text inside a filled value is left alone). The first line of the
agent and extractor system prompts is a marker, ``Collaborative Reasoner - role:
<name>``; the simulator's content script (``script.py``) reads it to tell the two
kinds of request apart.

The message view is Matrix's ``CoralAgent.preprocess``: the speaker sees the system
prompt, then the conversation (the student's opening included) with the other
agent's turns as ``user`` and its own as ``assistant``; when the conversation would
start with its own turn, a dummy ``user`` "hi" goes first, so that roles alternate and
the last message is always the partner's.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

from slurmgen.workflow import ChatMessage, Turn

from .data import Question, format_options
from .parse import AGENTS

DUMMY_FIRST = "hi"
AGENT_MARKER = "agent"
EXTRACTOR_MARKER = "answer extractor"
_MARKER = re.compile(r"\ACollaborative Reasoner - role: ([a-z ]+?)\s*$", re.MULTILINE)
_SLOT = re.compile(r"<<([A-Z]+)>>")


@cache
def load_prompt(name: str) -> str:
    """A prompt file of this package (``agent.txt``), or an absolute path of your own."""
    if Path(name).is_absolute():
        return Path(name).read_text("utf-8").strip()
    return resources.files(__package__).joinpath("prompts", name).read_text("utf-8").strip()


def fill(template: str, **slots: str) -> str:
    """Replace ``<<NAME>>`` by ``slots["name"]`` in one pass; an unknown slot is an error."""

    def value(m: re.Match[str]) -> str:
        key = m.group(1).lower()
        if key not in slots:
            raise KeyError(f"prompt slot <<{m.group(1)}>> has no value (known: {', '.join(sorted(slots))})")
        return slots[key]

    return _SLOT.sub(value, template)


def opening(q: Question, template_file: str) -> str:
    """The student's fixed first message: the question and its lettered choices."""
    return fill(load_prompt(template_file), question=q.question, options=format_options(q.options))


def conversation(history: list[Turn]) -> list[Turn]:
    """The teacher's and student's turns (the opening included), in order."""
    return [t for t in history if t.role in AGENTS]


def agent_view(history: list[Turn], speaker: str, system_prompt: str) -> list[ChatMessage]:
    """What ``speaker`` is sent: its partner's turns as user, its own as assistant."""
    turns = conversation(history)
    messages = [ChatMessage(role="system", content=system_prompt)]
    if turns and turns[0].role == speaker:
        messages.append(ChatMessage(role="user", content=DUMMY_FIRST))
    messages.extend(
        ChatMessage(role="assistant" if t.role == speaker else "user", content=t.content) for t in turns
    )
    return messages


def extractor_messages(q: Question, response: str, system_file: str, user_file: str) -> list[ChatMessage]:
    """System prompt + the question, its choices and the one response to read."""
    request = fill(load_prompt(user_file), question=q.question, options=format_options(q.options),
                   response=response)
    return [ChatMessage(role="system", content=load_prompt(system_file)),
            ChatMessage(role="user", content=request)]


def kind_of(messages: list[ChatMessage]) -> str | None:
    """``agent`` or ``answer extractor``, from the system prompt's marker line."""
    for message in messages:
        if message.role == "system" and message.content:
            found = _MARKER.search(message.content)
            if found and found.group(1) in (AGENT_MARKER, EXTRACTOR_MARKER):
                return found.group(1)
    return None

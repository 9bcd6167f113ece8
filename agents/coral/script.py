"""The simulator's content script for Coral: scripted teacher, student and extractor.

Which request is which comes from the system prompt's marker line. Every decision and
every length is drawn from a ``random.Random`` seeded by a hash of (opening message,
turn number, role), not from the simulator's ``rng``: any runner given the same
questions gets the same conversations, whatever seeds it uses.

**Agents.** The "truth" an agent can know is ``questions.gold_position`` of the
options (right for the built-in set, a fixed guess elsewhere). Each agent has per
conversation a *pliability* (how readily it adopts its partner's answer; 0 =
stubborn) and a *skill* (chance that its own solution is right). On each turn it:

- hedges ("not sure yet", no final answer) with ``P_HEDGE``;
- without an answer of its own yet (first turn, or after a hedge): follows its
  partner's answer with ``P_FOLLOW`` (student's first turn only), otherwise solves
  on its own: right with its skill, else the question's tempting wrong choice
  (``P_TEMPTING``) or a random wrong one;
- with an answer that differs from its partner's: switches to the partner's with its
  pliability (x ``TO_CORRECT_BOOST`` if the partner is right, x ``FROM_CORRECT_DAMP``
  if it was right itself), re-solves with ``P_RETHINK``, else keeps its answer;
- otherwise keeps its answer.

It ends with "The correct answer is (X)." after ``AGENT_TOKENS`` (log-uniform) of
reasoning that quotes the question and discusses other choices. Over the built-in
set this gives about 75 % agreement, half of it correct, and a fifth of the
conversations running to ``max_turns``.

**Extractor.** "(X)" for the reply's last "correct answer is (X)", "not sure yet"
when there is none, and with ``P_EXTRACT_MISS`` an unreadable reply (invalid).
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

from .prompting import AGENT_MARKER, DUMMY_FIRST, EXTRACTOR_MARKER, kind_of
from .questions import LETTERS, gold_position

P_HEDGE = 0.07
P_FOLLOW = 0.25
P_TEMPTING = 0.5
P_RETHINK = 0.05
TO_CORRECT_BOOST = 1.5
FROM_CORRECT_DAMP = 0.5
PLIABILITY = (0.0, 0.0, 0.0, 0.05, 0.1, 0.25, 0.5)  # drawn per agent and conversation
SKILL = (0.25, 0.75)  # uniform range
P_EXTRACT_MISS = 0.03
P_EXTRACT_VERBOSE = 0.15
AGENT_TOKENS = (50, 600)

_FINAL = re.compile(r"correct answer is \(([A-Z])\)")
_OPTION = re.compile(r"^\(([A-Z])\) (.*)$", re.MULTILINE)
_QUOTED = re.compile(r'"(.+)"', re.DOTALL)

OPENERS = {
    "first": ["Let me work through this from the start.", "Here is how I would solve it.",
              "I'll take the first pass at this problem."],
    "follow": ["Your reasoning looks right to me; let me retrace it to be sure.",
               "I checked your steps and they hold up."],
    "keep_same": ["We are on the same page; let me restate the key step.",
                  "I agree, and here is a compact version of the argument."],
    "keep": ["I looked at your argument again, but I still think you slipped at one step.",
             "I see where you are coming from, but I don't think that step holds.",
             "I have to disagree; let me show where our answers part ways."],
    "switch": ["You're right, I made a mistake earlier. Let me redo it.",
               "After checking your steps I agree that my earlier answer was wrong."],
    "rethink": ["Neither of our answers survives a careful check, so let me start over.",
                "Let me step back and solve this again from scratch."],
    "hedge": ["I need to look at this more carefully before I commit.",
              "Something in both of our arguments bothers me."],
}
REASONING = [
    "The question asks: {q}",
    "First, restate what is given and what is being asked.",
    "Option ({o}) would require an assumption the question does not make.",
    "Working step by step keeps the arithmetic honest.",
    "If we check choice ({o}) against the conditions, it does not fit all of them.",
    "A quick sanity check on the order of magnitude helps here.",
    "The key step is to apply the definition exactly as stated, with nothing added.",
    "I double-checked the intermediate result against the original statement.",
    "Choice ({o}) looks tempting but comes from a common slip.",
    "Careful with the units and with which quantity is being asked for.",
    "Going through the remaining choices one by one rules most of them out.",
]
HEDGE_CLOSE = "I'm not sure yet which choice is right; let's check the remaining options together."


def _draw(*parts: object) -> random.Random:
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _final(text: str | None) -> str | None:
    found = _FINAL.findall(text or "")
    return found[-1] if found else None


class _Conversation:
    """What an agent request shows: the opening, the options, and the turns so far."""

    def __init__(self, messages: list[ChatMessage]) -> None:
        turns = [m for m in messages if m.role in ("user", "assistant")]
        if len(turns) > 1 and turns[0].role == "user" and turns[0].content == DUMMY_FIRST:
            turns = turns[1:]
        self.turns = turns
        self.opening = turns[0].content or "" if turns else ""
        # the opening is the student's: the speaker is the teacher iff it shows as user
        self.speaker = "teacher" if turns and turns[0].role == "user" else "student"
        self.number = len(turns)  # 1 = the teacher's first turn
        self.options = _OPTION.findall(self.opening)
        letters = [letter for letter, _ in self.options] or list(LETTERS[:4])
        self.letters = letters
        self.gold = letters[gold_position([text for _, text in self.options])] if self.options else letters[0]
        tempting = _draw("tempting", self.opening).choice([x for x in letters if x != self.gold] or letters)
        self.tempting = tempting
        mine = [m.content for m in turns[1:] if m.role == "assistant"] if self.speaker == "student" else \
            [m.content for m in turns if m.role == "assistant"]
        # the latest answer each side stated (a hedge does not erase an earlier one)
        self.own = next((a for a in map(_final, reversed(mine)) if a), None)
        self.own_first = not mine
        theirs = [m.content for m in turns if m.role == "user"]
        self.partner = next((a for a in map(_final, reversed(theirs)) if a), None)
        found = _QUOTED.search(self.opening)
        self.question = (found.group(1) if found else self.opening.split("\n")[0])[:300]


def _solve(rng: random.Random, conv: _Conversation, skill: float) -> str:
    if rng.random() < skill:
        return conv.gold
    if rng.random() < P_TEMPTING:
        return conv.tempting
    return rng.choice([x for x in conv.letters if x != conv.gold] or conv.letters)


def _decide(conv: _Conversation) -> tuple[str, str | None]:
    """(opener kind, the answer this turn commits to or None for a hedge)."""
    traits = _draw("traits", conv.opening, conv.speaker)
    pliability, skill = traits.choice(PLIABILITY), traits.uniform(*SKILL)
    rng = _draw("turn", conv.opening, conv.number, conv.speaker)
    if rng.random() < P_HEDGE:
        return "hedge", None
    own, partner = conv.own, conv.partner
    if own is None:
        if conv.own_first and partner is not None and conv.speaker == "student" and rng.random() < P_FOLLOW:
            return "follow", partner
        return "first", _solve(rng, conv, skill)
    if partner is None or partner == own:
        return ("keep_same" if partner == own else "keep"), own
    p_switch = pliability
    if partner == conv.gold:
        p_switch *= TO_CORRECT_BOOST
    elif own == conv.gold:
        p_switch *= FROM_CORRECT_DAMP
    roll = rng.random()
    if roll < min(p_switch, 0.95):
        return "switch", partner
    if roll < min(p_switch, 0.95) + P_RETHINK:
        return "rethink", _solve(rng, conv, skill)
    return "keep", own


def _reasoning(rng: random.Random, conv: _Conversation, tokens: int) -> str:
    out: list[str] = []
    written = 0
    while written < tokens:
        sentence = rng.choice(REASONING).format(q=conv.question, o=rng.choice(conv.letters))
        out.append(sentence)
        written += count_tokens(sentence)
    return " ".join(out)


def agent_reply(messages: list[ChatMessage]) -> str:
    conv = _Conversation(messages)
    kind, answer = _decide(conv)
    rng = _draw("text", conv.opening, conv.number, conv.speaker)
    low, high = AGENT_TOKENS
    tokens = round(math.exp(rng.uniform(math.log(low), math.log(high))))
    head = rng.choice(OPENERS[kind])
    close = HEDGE_CLOSE if answer is None else f"The correct answer is ({answer})."
    body = _reasoning(rng, conv, max(0, tokens - count_tokens(head) - count_tokens(close)))
    return f"{head}\n\n{body}\n\n{close}"


def extractor_reply(messages: list[ChatMessage]) -> str:
    request = next((m.content or "" for m in reversed(messages) if m.role == "user"), "")
    rng = _draw("extract", request)
    if rng.random() < P_EXTRACT_MISS:
        return "The response does not clearly pick one option."
    answer = _final(request)
    if answer is None:
        return "not sure yet"
    return f"The answer is ({answer})." if rng.random() < P_EXTRACT_VERBOSE else f"({answer})"


def respond(req: ScriptRequest, rng: random.Random) -> ScriptReply | None:
    """The reply to one Coral request, or None (generic content) for any other request."""
    kind = kind_of(req.messages)
    if kind == AGENT_MARKER:
        content = agent_reply(req.messages)
    elif kind == EXTRACTOR_MARKER:
        content = extractor_reply(req.messages)
        if req.response_format:  # structured outputs: only the schema's answers exist
            found = re.search(r"\(([A-Z])\)", content)
            answer = f"({found.group(1)})" if found else "not sure yet"
            content = msgspec.json.encode({"answer": answer}).decode()
    else:
        return None
    if count_tokens(content) > req.max_tokens:
        return ScriptReply(content=truncate_tokens(content, req.max_tokens), finish_reason="length")
    return ScriptReply(content=content)

"""Configuration of the Collaborative Reasoner workflow (Coral, Matrix ``coral_sequential``).

Every Coral knob is declared here once, with its default; YAML only composes. Prompts
are text files in ``agents/coral/prompts/`` named by the ``*_prompt`` fields (an
absolute path names a file of your own instead).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from slurmgen.workflow import Sampling, WorkflowConf


class AgreementRule(str, enum.Enum):
    """How the matcher decides that teacher and student agree.

    ``matrix``: per role, its most recent *valid* extracted answer (a hedge or an
    unreadable turn is skipped), as Matrix's ``CoralMatchAgent``. ``coral``: per role,
    the extraction of its *latest* turn, so a hedge or an invalid turn blocks
    agreement, as the original Coral ``stop_conv``.
    """

    matrix = "matrix"
    coral = "coral"


@dataclass
class CoralConf(WorkflowConf):
    name: str = "coral"

    # a conversation ends without agreement once this many agent turns were rated
    # (Matrix counts matcher calls: 20 = 10 teacher + 10 student turns)
    max_turns: int = 20
    # matrix = most recent valid answer per role; coral = last turn per role
    agreement_rule: AgreementRule = AgreementRule.matrix
    # teacher and student (same sampling, same system prompt)
    agent_sampling: Sampling = field(
        default_factory=lambda: Sampling(temperature=0.2, top_p=0.9, max_tokens=1024)
    )
    # answer extractor: "(X)" or "not sure yet"
    extractor_sampling: Sampling = field(
        default_factory=lambda: Sampling(temperature=0.0, top_p=1.0, max_tokens=32)
    )
    # request the extractor's reply by JSON schema ({"answer": "(X)" | "not sure yet"}: vLLM's and
    # SGLang's structured outputs); off by default: the reference reads the extractor's free text
    structured_extractor: bool = False
    # keep each conversation's requests of one role on one LLM replica (prefix cache) under
    # llm.routing=sticky (the requests' sticky key; other routings do not use it)
    sticky_routing: bool = True
    # prompt files, in agents/coral/prompts/ (or absolute paths)
    agent_prompt: str = "agent.txt"  # system prompt of teacher and student
    opening_prompt: str = "opening.txt"  # the student's fixed first message
    extractor_prompt: str = "extractor.txt"  # extractor system prompt
    extractor_user_prompt: str = "extractor_user.txt"  # extractor request

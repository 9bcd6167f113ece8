"""Configuration of the Collaborative Reasoner workflow (Coral, Matrix ``coral_sequential``).

Every Coral knob is declared here once, with its default; YAML only composes. Prompts
are text files in ``agents/coral/prompts/`` named by the ``*_prompt`` fields (an
absolute path names a file of your own instead).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from slurmgen.config.types import SamplingConf, WorkflowConf

_PKG = "slurmgen.agents.coral"


class AgreementRule(str, enum.Enum):
    """How the matcher decides that teacher and student agree.

    ``matrix``: per role, its most recent *valid* extracted answer (a hedge or an
    unreadable turn is skipped), as Matrix's ``CoralMatchAgent``. ``coral``: per role,
    the extraction of its *latest* turn, so a hedge or an invalid turn blocks
    agreement, as the original Coral ``stop_conv``.
    """

    matrix = "matrix"
    coral = "coral"


def _roles() -> dict[str, str]:
    return {
        "teacher": f"{_PKG}.roles:teacher_role",
        "student": f"{_PKG}.roles:student_role",
        "extractor": f"{_PKG}.roles:extractor_role",
        "matcher": f"{_PKG}.roles:matcher_role",
    }


@dataclass
class CoralConf(WorkflowConf):
    name: str = "coral"
    roles: dict[str, str] = field(default_factory=_roles)
    transition: str = f"{_PKG}.flow:transition"
    metrics: str = f"{_PKG}.flow:metrics"
    row: str = f"{_PKG}.data:Question"
    state: str = f"{_PKG}.state:CoralState"
    export: str = f"{_PKG}.export:SHAPES"
    sim_script: str = f"{_PKG}.script:respond"
    builtin_dataset: str = f"{_PKG}.data:builtin_path"

    # a conversation ends without agreement once this many agent turns were rated
    # (Matrix counts matcher calls: 20 = 10 teacher + 10 student turns)
    max_turns: int = 20
    # matrix = most recent valid answer per role; coral = last turn per role
    agreement_rule: AgreementRule = AgreementRule.matrix
    # teacher and student (same sampling, same system prompt)
    agent_sampling: SamplingConf = field(
        default_factory=lambda: SamplingConf(temperature=0.2, top_p=0.9, max_tokens=1024)
    )
    # answer extractor: "(X)" or "not sure yet"
    extractor_sampling: SamplingConf = field(
        default_factory=lambda: SamplingConf(temperature=0.0, top_p=1.0, max_tokens=32)
    )
    # keep each conversation's requests of one role on one LLM replica (prefix cache)
    sticky_routing: bool = True
    # prompt files, in agents/coral/prompts/ (or absolute paths)
    agent_prompt: str = "agent.txt"  # system prompt of teacher and student
    opening_prompt: str = "opening.txt"  # the student's fixed first message
    extractor_prompt: str = "extractor.txt"  # extractor system prompt
    extractor_user_prompt: str = "extractor_user.txt"  # extractor request

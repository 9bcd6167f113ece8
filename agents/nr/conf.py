"""Configuration of the NaturalReasoning workflow (Matrix ``nr_curation``).

Every NR knob is declared here once, with its default; YAML only composes. Prompts are
text files in ``agents/nr/prompts/`` named by the ``*_prompt`` fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slurmgen.config.types import SamplingConf, WorkflowConf

_PKG = "slurmgen.agents.nr"


def _roles() -> dict[str, str]:
    return {
        "filter": f"{_PKG}.roles:filter_role",
        "score": f"{_PKG}.roles:score_role",
        "question": f"{_PKG}.roles:question_role",
    }


@dataclass
class NRConf(WorkflowConf):
    name: str = "nr"
    roles: dict[str, str] = field(default_factory=_roles)
    transition: str = f"{_PKG}.flow:transition"
    metrics: str = f"{_PKG}.flow:metrics"
    row: str = f"{_PKG}.data:Document"
    state: str = f"{_PKG}.state:NRState"
    export: str = f"{_PKG}.export:SHAPES"
    sim_script: str = f"{_PKG}.script:respond"
    builtin_dataset: str = f"{_PKG}.data:builtin_path"

    # gate 0: a document whose fastText `en` score is below this is rejected
    # (`filter_by_en`) without an LLM call
    filter_en: float = 0.8
    # Yes/No classifier: only the exact reply "Yes" passes
    filter_sampling: SamplingConf = field(
        default_factory=lambda: SamplingConf(temperature=1.0, top_p=0.95, max_tokens=8)
    )
    # rubric scorer: analysis, then a fenced JSON block {criteria_1..criteria_4}
    score_sampling: SamplingConf = field(
        default_factory=lambda: SamplingConf(temperature=0.2, top_p=0.9, max_tokens=10240)
    )
    # exam-question writer: fenced JSON with question, category and answers
    question_sampling: SamplingConf = field(
        default_factory=lambda: SamplingConf(temperature=0.0, top_p=0.9, max_tokens=20480)
    )
    # system prompt files, in agents/nr/prompts/
    filter_prompt: str = "filter.txt"
    score_prompt: str = "score.txt"
    question_prompt: str = "question.txt"
    # Documents longer than this many characters are cut (at a word boundary) before
    # they go into a prompt, so that a huge web page cannot overflow the model's
    # context (~6k tokens by default; Matrix sends the whole text). 0 = never cut.
    max_text_chars: int = 24000

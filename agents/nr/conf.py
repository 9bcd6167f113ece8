"""Configuration of the NaturalReasoning workflow (Matrix ``nr_curation``).

Every NR knob is declared here once, with its default; YAML only composes. Prompts are
text files in ``agents/nr/prompts/`` named by the ``*_prompt`` fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slurmgen.workflow import ConfigError, Sampling, SlurmgenConf, WorkflowConf

STRUCTURED_ROLES = ("score", "question")  # roles whose reply is a JSON object

@dataclass
class NRConf(WorkflowConf):
    name: str = "nr"

    # gate 0: a document whose fastText `en` score is below this is rejected
    # (`filter_by_en`) without an LLM call
    filter_en: float = 0.8
    # Yes/No classifier: only the exact reply "Yes" passes
    filter_sampling: Sampling = field(
        default_factory=lambda: Sampling(temperature=1.0, top_p=0.95, max_tokens=8)
    )
    # rubric scorer: analysis, then a fenced JSON block {criteria_1..criteria_4}
    score_sampling: Sampling = field(
        default_factory=lambda: Sampling(temperature=0.2, top_p=0.9, max_tokens=10240)
    )
    # exam-question writer: fenced JSON with question, category and answers
    question_sampling: Sampling = field(
        default_factory=lambda: Sampling(temperature=0.0, top_p=0.9, max_tokens=20480)
    )
    # system prompt files, in agents/nr/prompts/
    filter_prompt: str = "filter.txt"
    score_prompt: str = "score.txt"
    question_prompt: str = "question.txt"
    # Documents longer than this many characters are cut (at a word boundary) before
    # they go into a prompt, so that a huge web page cannot overflow the model's
    # context (~6k tokens by default; Matrix sends the whole text). 0 = never cut.
    max_text_chars: int = 24000
    # roles whose reply is requested as JSON by schema (response_format json_schema: vLLM's and
    # SGLang's structured outputs) and read as a bare JSON object: score, question. Off by
    # default: the reference asks for a fenced JSON block and rejects replies without one.
    structured: list[str] = field(default_factory=list)

    def resolve(self, conf: SlurmgenConf) -> None:
        unknown = [r for r in self.structured if r not in STRUCTURED_ROLES]
        if unknown:
            raise ConfigError(f"workflow.structured={self.structured}: {', '.join(unknown)} cannot be structured; "
                              f"valid: {', '.join(STRUCTURED_ROLES)}")

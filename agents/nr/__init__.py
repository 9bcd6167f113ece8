"""NaturalReasoning curation (Matrix ``nr_curation``): filter -> score -> question.

The whole workflow is ``WORKFLOW``, registered by one entry point (``pyproject.toml``:
``nr = "slurmgen.agents.nr:WORKFLOW"`` in group ``slurmgen.workflows``).
"""

from __future__ import annotations

from slurmgen.workflow import Workflow

from .conf import NRConf
from .data import Document, builtin_path
from .export import SHAPES
from .flow import metrics, transition
from .roles import filter_role, question_role, score_role
from .script import respond
from .state import NRState

WORKFLOW = Workflow(
    name="nr",
    conf=NRConf,
    roles={"filter": filter_role, "score": score_role, "question": question_role},
    transition=transition,
    metrics=metrics,
    row=Document,
    state=NRState,
    sim_scripts={"default": respond},
    builtin_dataset=builtin_path,
    export=SHAPES,
)

"""Collaborative Reasoner (Coral, Matrix ``coral_sequential``): a teacher and a student
discuss a multiple-choice question until they agree or run out of turns.

The whole workflow is ``WORKFLOW``, registered by one entry point (``pyproject.toml``).
"""

from __future__ import annotations

from slurmgen.workflow import Workflow

from .conf import CoralConf
from .data import Question, builtin_path
from .export import SHAPES
from .flow import metrics, transition
from .roles import extractor_role, matcher_role, student_role, teacher_role
from .script import respond
from .state import CoralState

WORKFLOW = Workflow(
    name="coral",
    conf=CoralConf,
    roles={"teacher": teacher_role, "student": student_role, "extractor": extractor_role, "matcher": matcher_role},
    transition=transition,
    metrics=metrics,
    row=Question,
    state=CoralState,
    sim_scripts={"default": respond},
    builtin_dataset=builtin_path,
    export=SHAPES,
)

"""tau2-bench (tau2's loop, Matrix's four agents): a user simulator, an assistant, the
domain's tools in a tool pool, and tau2's reward.

The whole workflow is ``WORKFLOW``, registered by one entry point (``pyproject.toml``).
tau2 itself (seconds to import) is loaded on first use: by ``warm`` when a peer starts,
by the tool-pool factory in a pool member.
"""

from __future__ import annotations

from typing import Any

from slurmgen.workflow import Workflow

from .conf import Tau2Conf
from .data import Tau2Task, builtin_dataset
from .export import SHAPES
from .flow import Tau2State, metrics, transition
from .roles import assistant_role, env_role, reward_role, user_role, warm
from .script import idle, oracle, respond


def regrader(conf: Any) -> Any:
    """``slurmgen regrade``: tau2's evaluator again on each record (agents/tau2/regrade.py)."""
    from .regrade import regrader as tau2_regrader

    return tau2_regrader(conf)


def open_session(spec: dict[str, Any]) -> Any:
    """The tool-pool factory: one tau2 environment per task (agents/tau2/domain.py)."""
    from .domain import open_session as open_tau2

    return open_tau2(spec)


WORKFLOW = Workflow(
    name="tau2",
    conf=Tau2Conf,
    roles={"user": user_role, "assistant": assistant_role, "env": env_role, "reward": reward_role},
    transition=transition,
    metrics=metrics,
    row=Tau2Task,
    state=Tau2State,
    # llm.script=oracle: replay each task's gold actions and required communications (reward 1);
    # llm.script=idle: a do-nothing agent (answers without acting; the user then stops)
    sim_scripts={"default": respond, "oracle": oracle, "idle": idle},
    builtin_dataset=builtin_dataset,
    toolpool_factory=open_session,
    export=SHAPES,
    warm=warm,
    regrade=regrader,
)

"""Finding workflow config classes and loading a run's resolved config, typed.

Workflows are found through the ``slurmgen.workflows`` entry-point group
(``name = "package.module:ConfClass"``), so a user's package adds one without
touching slurmgen. A workflow without a class uses the plain ``WorkflowConf``.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from slurmgen.config import SlurmgenConf, WorkflowConf, register_configs
from slurmgen.errors import ConfigError

GROUP = "slurmgen.workflows"


def workflow_classes() -> dict[str, type]:
    return {ep.name: ep.load() for ep in entry_points(group=GROUP)}


def register_all() -> dict[str, type]:
    classes = workflow_classes()
    register_configs(classes)
    return classes


def typed(cfg: Any) -> SlurmgenConf:
    """A composed DictConfig -> typed SlurmgenConf (workflow as its own class)."""
    name = cfg.workflow.name
    cls = workflow_classes().get(name, WorkflowConf)
    schema = OmegaConf.structured(SlurmgenConf(workflow=cls()))
    try:
        merged = OmegaConf.merge(schema, cfg)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid config: {exc}") from exc


def load_run_config(path: Path) -> SlurmgenConf:
    return typed(OmegaConf.load(path))


def dump(conf: SlurmgenConf) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(conf))

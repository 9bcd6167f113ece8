"""Finding workflow config classes and loading a run's resolved config, typed.

Workflows are found through the ``slurmgen.workflows`` entry-point group
(``name = "package.module:ConfClass"``), so a user's package adds one without
touching slurmgen, and — for a quick experiment without packaging — through the
environment variable ``SLURMGEN_WORKFLOWS="name=module:ConfClass[,name2=...]"``.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from slurmgen.config.types import LLMConf, SlurmgenConf, WorkflowConf, register_configs
from slurmgen.errors import ConfigError
from slurmgen.workflow import import_path

GROUP = "slurmgen.workflows"


ENV = "SLURMGEN_WORKFLOWS"


def workflow_classes() -> dict[str, type]:
    classes = {ep.name: ep.load() for ep in entry_points(group=GROUP)}
    for item in filter(None, os.environ.get(ENV, "").split(",")):
        name, sep, path = item.partition("=")
        if not sep:
            raise ConfigError(f"{ENV}: {item!r} must look like name=package.module:ConfClass")
        classes[name.strip()] = import_path(path.strip(), f"{ENV} ({name.strip()})")
    return classes


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
        conf: SlurmgenConf = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid config: {exc}") from exc
    conf.llms = {name: _pool(name, spec) for name, spec in conf.llms.items()}
    return conf


def _pool(name: str, spec: Any) -> LLMConf:
    """One ``llms.<name>`` entry as an LLMConf (fields not given keep their defaults).

    ``llms`` is an untyped dict in the schema so that ``+llms.<name>.<key>=value`` can add a
    pool from the command line (OmegaConf cannot add to a dict of structured values)."""
    if isinstance(spec, LLMConf):
        return spec
    if not isinstance(spec, dict):
        raise ConfigError(f"llms.{name} must be a mapping of LLM pool settings (see LLMConf), not {spec!r}")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LLMConf), spec))  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid config: llms.{name}: {exc}") from exc


def load_run_config(path: Path) -> SlurmgenConf:
    return typed(OmegaConf.load(path))


def dump(conf: SlurmgenConf) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(conf))

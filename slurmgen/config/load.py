"""Finding workflow config classes and loading a run's resolved config, typed.

A workflow's conf class comes from its ``Workflow`` object (slurmgen.config.workflows).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import msgspec
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from slurmgen.config import workflows as registry
from slurmgen.config.types import LLMConf, SlurmgenConf, WorkflowConf, register_configs
from slurmgen.errors import ConfigError

ENV, GROUP = registry.ENV, registry.GROUP


def workflow_classes() -> dict[str, type[WorkflowConf]]:
    return {name: wf.conf for name, wf in registry.workflows().items()}


def register_all() -> dict[str, type]:
    classes = workflow_classes()
    register_configs(classes)
    return classes


class WorkflowSpec(msgspec.Struct, kw_only=True):
    """What a run directory needs to load its workflow again (state/workflow.json):
    ``slurmgen export`` or ``status`` of a run whose workflow came from SLURMGEN_WORKFLOWS works
    without the variable."""

    name: str
    workflow: str = ""  # package.module:WORKFLOW
    sys_path: list[str] = []  # PYTHONPATH when the run was made (absolute)


def workflow_spec(name: str) -> WorkflowSpec:
    paths = [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return WorkflowSpec(name=name, workflow=registry.workflow_path(name), sys_path=paths)


def _unregistered(name: str, spec: WorkflowSpec | None) -> ConfigError:
    known = ", ".join(sorted(workflow_classes())) or "none"
    hint = (f"; this run was made with {ENV}={spec.name}={spec.workflow}"
            + (f" and PYTHONPATH={os.pathsep.join(spec.sys_path)}" if spec.sys_path else "")
            if spec is not None else f"; register it with {ENV}={name}=package.module:WORKFLOW or an entry "
            f"point in the group {GROUP!r}")
    return ConfigError(f"workflow {name!r} is not registered here (registered: {known}){hint}")


def _from_spec(spec: WorkflowSpec) -> type[WorkflowConf] | None:
    """The recorded workflow's conf class, importable from the recorded paths; None if it is not."""
    if not spec.workflow:
        return None
    sys.path.extend(p for p in spec.sys_path if p not in sys.path)
    try:
        cls = registry.add(spec.name, spec.workflow).conf
    except ConfigError:
        return None
    register_configs({spec.name: cls})
    return cls


def typed(cfg: Any, spec: WorkflowSpec | None = None) -> SlurmgenConf:
    """A composed DictConfig -> typed SlurmgenConf (workflow as its own class)."""
    name = cfg.workflow.name
    cls = workflow_classes().get(name) or (_from_spec(spec) if spec is not None and spec.name == name else None)
    if cls is None:
        raise _unregistered(name, spec)
    schema = OmegaConf.structured(SlurmgenConf(workflow=cls()))
    try:
        merged = OmegaConf.merge(schema, cfg)
        conf: SlurmgenConf = OmegaConf.to_object(merged)  # type: ignore[assignment]  # to_object of a structured SlurmgenConf is one
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid config: {exc}") from exc
    conf.llms = {name: _pool(name, spec) for name, spec in conf.llms.items()}
    conf.workflow.resolve(conf)
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
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LLMConf), spec))  # type: ignore[return-value]  # to_object of a structured LLMConf is one
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid config: llms.{name}: {exc}") from exc


def load_run_config(path: Path) -> SlurmgenConf:
    """A run's config.yaml, typed; its workflow class found as registered here or as the run recorded it."""
    try:
        spec: WorkflowSpec | None = msgspec.json.decode((path.parent / "state" / "workflow.json").read_bytes(),
                                                        type=WorkflowSpec)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        spec = None
    return typed(OmegaConf.load(path), spec)


def dump(conf: SlurmgenConf) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(conf))

"""Finding workflow config classes and loading a run's resolved config, typed.

Workflows are found through the ``slurmgen.workflows`` entry-point group
(``name = "package.module:ConfClass"``), so a user's package adds one without
touching slurmgen, and — for a quick experiment without packaging — through the
environment variable ``SLURMGEN_WORKFLOWS="name=module:ConfClass[,name2=...]"``.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import msgspec
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from slurmgen.config.types import LLMConf, SlurmgenConf, register_configs
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


class WorkflowSpec(msgspec.Struct, kw_only=True):
    """What a run directory needs to load its workflow's config class again (state/workflow.json):
    ``slurmgen export`` or ``status`` of a run whose workflow came from SLURMGEN_WORKFLOWS works
    without the variable."""

    name: str
    conf_class: str  # package.module:ConfClass
    sys_path: list[str] = []  # PYTHONPATH when the run was made (absolute)


def workflow_spec(name: str) -> WorkflowSpec:
    cls = workflow_classes()[name]
    paths = [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return WorkflowSpec(name=name, conf_class=f"{cls.__module__}:{cls.__qualname__}", sys_path=paths)


def _unregistered(name: str, spec: WorkflowSpec | None) -> ConfigError:
    known = ", ".join(sorted(workflow_classes())) or "none"
    hint = (f"; this run was made with {ENV}={spec.name}={spec.conf_class}"
            + (f" and PYTHONPATH={os.pathsep.join(spec.sys_path)}" if spec.sys_path else "")
            if spec is not None else f"; register it with {ENV}={name}=package.module:ConfClass or an entry "
            f"point in the group {GROUP!r}")
    return ConfigError(f"workflow {name!r} is not registered here (registered: {known}){hint}")


def _from_spec(spec: WorkflowSpec) -> type | None:
    """The recorded class, importable from the recorded paths; None if it is not."""
    sys.path.extend(p for p in spec.sys_path if p not in sys.path)
    try:
        cls: type = import_path(spec.conf_class, ENV)
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
        conf: SlurmgenConf = OmegaConf.to_object(merged)  # type: ignore[assignment]
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
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LLMConf), spec))  # type: ignore[return-value]
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

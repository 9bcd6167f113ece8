"""Finding workflows: one ``Workflow`` object each, by name.

In a package: one entry point of group ``slurmgen.workflows`` (``name = "package:WORKFLOW"``).
Out of tree, for a quick experiment: ``SLURMGEN_WORKFLOWS="name=module:WORKFLOW[,name2=...]"``
(the module is imported from the current directory or ``PYTHONPATH``).
"""

from __future__ import annotations

import functools
import importlib
import os
from importlib.metadata import entry_points
from typing import Any

from slurmgen.errors import ConfigError
from slurmgen.workflow import Workflow

GROUP = "slurmgen.workflows"
ENV = "SLURMGEN_WORKFLOWS"


def import_path(path: str, what: str) -> Any:
    """Resolve ``"package.module:attribute"``; errors name where the path came from."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what}={path!r} must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what}={path!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{what}={path!r}: {module_name!r} has no attribute {attr!r}") from None


_added: dict[str, tuple[Workflow, str]] = {}  # found again from a run directory (add())


def workflows() -> dict[str, Workflow]:
    """Every registered workflow by name (the environment variable's override the entry points')."""
    return {name: wf for name, (wf, _) in _registered().items()}


def workflow_path(name: str) -> str:
    """Where ``name``'s Workflow object is: "package.module:attribute"."""
    return _registered()[name][1]


def add(name: str, path: str) -> Workflow:
    """Register the Workflow at ``path`` as ``name`` for this process (a run recorded it)."""
    wf = import_path(path, ENV)
    _check(name, wf, path)
    _added[name] = (wf, path)
    return wf


def _registered() -> dict[str, tuple[Workflow, str]]:
    return {**dict(_found(os.environ.get(ENV, ""))), **_added}


def _check(name: str, wf: object, where: str) -> None:
    if not isinstance(wf, Workflow):
        raise ConfigError(f"{where} is a {type(wf).__name__}, not a slurmgen.workflow.Workflow")
    if wf.name != name:
        raise ConfigError(f"{where}: registered as {name!r} but its Workflow is named {wf.name!r}")


@functools.cache
def _found(env: str) -> tuple[tuple[str, tuple[Workflow, str]], ...]:
    found = {ep.name: (ep.load(), ep.value) for ep in entry_points(group=GROUP)}
    for item in filter(None, env.split(",")):
        name, sep, path = item.partition("=")
        if not sep:
            raise ConfigError(f"{ENV}: {item!r} must look like name=package.module:WORKFLOW")
        found[name.strip()] = (import_path(path.strip(), f"{ENV} ({name.strip()})"), path.strip())
    for name, (wf, where) in found.items():
        _check(name, wf, where)
    return tuple(found.items())


def get_workflow(name: str) -> Workflow:
    found = workflows()
    if name not in found:
        raise ConfigError(f"workflow={name!r} is unknown; valid: {', '.join(sorted(found))} (a workflow is "
                          f"registered by an entry point of group {GROUP} or by {ENV})")
    return found[name]


def builtin_dataset(workflow: Workflow, conf: Any) -> str:
    """The path of the workflow's built-in dataset (used when no dataset.path/hf is given)."""
    if workflow.builtin_dataset is None:
        raise ConfigError(f"workflow {workflow.name!r} has no built-in dataset: give dataset.path=<file> "
                          "or dataset.hf=<name>")
    return str(workflow.builtin_dataset(conf.workflow))

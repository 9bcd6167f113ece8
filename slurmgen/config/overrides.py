"""Check command-line overrides before Hydra runs, so a typo names the valid keys."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from slurmgen.config.load import workflow_classes
from slurmgen.config.types import LLMConf, SlurmgenConf
from slurmgen.errors import ConfigError

DEFAULT_WORKFLOW = "nr"


def _fields(cls: Any) -> dict[str, Any]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _schema_of(group: str, workflow_cls: type) -> type | None:
    if group == "workflow":
        return workflow_cls
    f = _fields(SlurmgenConf).get(group)
    return f.default_factory if f is not None and f.default_factory is not dataclasses.MISSING else None


def _split(arg: str) -> tuple[str, str] | None:
    if arg.startswith("-") or "=" not in arg:
        return None
    key, value = arg.split("=", 1)
    key = key.lstrip("+~")
    if key.startswith("hydra") or "/" in key:
        return None
    return key, value


def check_overrides(argv: list[str]) -> None:
    classes = workflow_classes()
    pairs = [p for p in map(_split, argv) if p is not None]
    chosen = [v for k, v in pairs if k == "workflow"]
    for name in chosen:
        for option in name.split(","):
            if option not in classes:
                raise ConfigError(f"unknown workflow {option!r}; available: {', '.join(sorted(classes))}")
    workflow = chosen[0].split(",")[0] if chosen else DEFAULT_WORKFLOW
    _check_workflow_name(pairs, workflow, sorted(classes))
    workflow_cls = classes.get(workflow)
    for key, value in pairs:
        _check_key(key, workflow_cls)
        _check_type(key, value, workflow_cls)


def _check_workflow_name(pairs: list[tuple[str, str]], workflow: str, valid: list[str]) -> None:
    """``workflow.name`` is the workflow group's own: ``workflow=NAME`` picks a workflow, not it."""
    for key, value in pairs:
        if key != "workflow.name" or value == workflow:
            continue
        known = value in valid
        raise ConfigError(f"workflow.name={value} does not choose the workflow"
                          + ("" if known else f" (and {value!r} is no workflow)")
                          + f"; choose one with workflow=NAME (valid: {', '.join(valid)})"
                          + (f", e.g. workflow={value}" if known else ""))


# Dicts whose keys the user names (a new LLM pool, a role's pool): Hydra's struct mode would
# ask for "+" before each new key; `open_keys` adds "++" (add or override) for them.
OPEN_DICTS = ("llms.", "workflow.role_llm.")


def open_keys(argv: list[str]) -> list[str]:
    """``llms.judge.model=x`` -> ``++llms.judge.model=x`` (likewise workflow.role_llm.<role>)."""
    return [f"++{a}" if not a.startswith(("+", "~", "-")) and "=" in a and a.startswith(OPEN_DICTS) else a
            for a in argv]


def _check_key(key: str, workflow_cls: type | None) -> None:
    group, _, rest = key.partition(".")
    groups = _fields(SlurmgenConf)
    if group not in groups:
        raise ConfigError(f"unknown config key {key!r}; top-level groups: {', '.join(groups)}")
    if not rest:
        return
    schema: type | None
    if group == "llms":  # llms.<pool>.<an LLMConf field>
        pool, _, rest = rest.partition(".")
        group, schema = f"llms.{pool}", LLMConf
    else:
        schema = _schema_of(group, workflow_cls) if workflow_cls else None
    if not rest or schema is None or not dataclasses.is_dataclass(schema):
        return
    name = rest.split(".")[0]
    valid = _fields(schema)
    if name not in valid:
        listing = ", ".join(f"{group}.{n}" for n in valid)
        raise ConfigError(f"unknown config key {key!r}; valid keys of {group}: {listing}")


def _leaf_schema(key: str, workflow_cls: type | None) -> tuple[type | None, str]:
    """The dataclass that declares ``key``'s field and the field's name (None when not one field)."""
    group, _, rest = key.partition(".")
    if group == "llms":
        _, _, rest = rest.partition(".")
        schema: type | None = LLMConf
    else:
        schema = _schema_of(group, workflow_cls) if workflow_cls else None
    if not rest or "." in rest or schema is None or not dataclasses.is_dataclass(schema):
        return None, ""
    return schema, rest


def _check_type(key: str, value: str, workflow_cls: type | None) -> None:
    """``dataset.limit=abc``: refused here, naming the field's type (Hydra would exit 1 later).
    The value is read as Hydra reads it; each option of a sweep (``a,b``) is checked, other sweeps not."""
    schema, name = _leaf_schema(key, workflow_cls)
    if schema is None or "${" in value:
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_override(f"{key}={value}")
    except HydraException:
        return  # Hydra's own message, at its turn
    given = parsed.value()
    options = given.list if isinstance(given, ChoiceSweep) else [] if parsed.is_sweep_override() else [given]
    for option in options:
        try:
            OmegaConf.merge(OmegaConf.structured(schema), {name: option})
        except OmegaConfBaseException as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"{key}={value}: {first} ({key} is {_fields(schema)[name].type})") from None

"""Check command-line overrides before Hydra runs, so a typo names the valid keys."""

from __future__ import annotations

import dataclasses
from typing import Any

from slurmgen.config.types import LLMConf, SlurmgenConf
from slurmgen.config.load import workflow_classes
from slurmgen.errors import ConfigError

DEFAULT_WORKFLOW = "nr"


def _fields(cls: Any) -> dict[str, Any]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _schema_of(group: str, workflow_cls: type) -> type | None:
    if group == "workflow":
        return workflow_cls
    f = _fields(SlurmgenConf).get(group)
    return f.default_factory if f is not None and f.default_factory is not dataclasses.MISSING else None  # type: ignore[return-value]


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
    workflow_cls = classes.get(chosen[0].split(",")[0] if chosen else DEFAULT_WORKFLOW)
    for key, _ in pairs:
        _check_key(key, workflow_cls)


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

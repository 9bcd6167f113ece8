"""Resuming a run directory: refuse a config that would change what the records mean."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import ConfigError
from slurmgen.rundir import RunDir

# Keys whose change would make old and new records disagree. Anything else (run size,
# concurrency, LLM replicas, time scale, more trials, a larger limit) may change. Every
# pool's keys are pinned as the default pool's are (llms.<name>.model as llm.model).
PINNED = ("workflow", "dataset.path", "dataset.fingerprint", "run.seed", "llm.backend", "llm.model", "llm.script")


def _pinned(key: str) -> bool:
    parts = key.split(".")
    if parts[0] == "llms" and len(parts) > 2:
        key = ".".join(["llm", *parts[2:]])
    return any(key == p or key.startswith(p + ".") for p in PINNED)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    keys = [k for k in sorted(set(a) | set(b)) if _pinned(k)]
    # a key the old config lacks was added to slurmgen since: nothing to compare it with
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" + (" (the input's content changed)" if k == "dataset.fingerprint" else "")
            for k in keys if k in a and a.get(k) != b.get(k)]


def check_resume(run: RunDir, conf: SlurmgenConf) -> None:
    if not run.config.exists():
        return
    old = OmegaConf.to_container(OmegaConf.load(run.config), resolve=True)
    new = OmegaConf.to_container(OmegaConf.structured(conf), resolve=True)
    diff = differences(old, new)  # type: ignore[arg-type]  # to_container of a DictConfig is a dict
    if diff and not conf.run.allow_config_change:
        raise ConfigError(
            f"{run.root} holds a run with another config; resuming it would mix results:\n  "
            + "\n  ".join(diff)
            + "\nUse another run.dir, or pass run.allow_config_change=true if you know the records stay comparable."
        )

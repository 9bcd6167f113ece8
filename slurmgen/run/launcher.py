"""What the driver needs of a launcher, and finding the one ``cluster.kind`` names.

Launchers live outside the core (``launchers/``, or another package) and register a factory
under the entry-point group ``slurmgen.launchers``, as workflows do under ``slurmgen.workflows``;
the core never imports one by name.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol

from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import ConfigError
from slurmgen.run.plan import ProcessSpec
from slurmgen.rundir import RunDir

GROUP = "slurmgen.launchers"


class Launcher(Protocol):
    """Starts a plan's processes, watches them (each kind restarts or resubmits what it can),
    and stops every one it started."""

    def start(self, spec: ProcessSpec) -> object: ...

    def start_all(self, specs: list[ProcessSpec]) -> object: ...

    def check(self) -> None:
        """Raise RunCrashed (or another SlurmgenError) when the run cannot go on."""

    def stop(self, component: str | None = None, grace_s: float = 10.0) -> None: ...


class LauncherFactory(Protocol):
    def __call__(self, conf: SlurmgenConf, run: RunDir) -> Launcher: ...


def make_launcher(conf: SlurmgenConf, run: RunDir) -> Launcher:
    """cluster.kind picks the launcher among the entry points of group ``slurmgen.launchers``."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if conf.cluster.kind not in found:
        raise ConfigError(f"cluster.kind={conf.cluster.kind!r} is unknown; valid: {', '.join(sorted(found))} "
                          "(on the command line: cluster=local or cluster=slurm). If local or slurm is missing, "
                          f"the entry points of group {GROUP} are not installed: pip install -e . --no-deps")
    factory: LauncherFactory = found[conf.cluster.kind].load()
    return factory(conf, run)

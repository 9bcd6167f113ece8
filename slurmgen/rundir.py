"""The run directory's layout, in one place, and atomic writes into it."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def registry_address(self) -> Path:
        return self.root / "registry.json"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def shard(self, index: int) -> Path:
        return self.results / f"shard-{index:05d}.jsonl"

    def shard_done(self, index: int) -> Path:
        return self.state / f"shard-{index:05d}.done"

    @property
    def driver_alive(self) -> Path:
        """The driver touches it while it follows a SLURM run; its jobs watch it (lifeline)."""
        return self.state / "driver.alive"

    def not_ready(self, name: str) -> Path:
        """Written by a service supervisor whose service never became healthy (the reason)."""
        return self.state / f"{name}.not-ready"

    @property
    def refused(self) -> Path:
        """Written by a peer that found, once the servers were up, that the config cannot work
        (slurmgen.llm.limits): the reasons; the driver stops the run with exit code 2."""
        return self.state / "refused"

    def stats(self, name: str) -> Path:
        return self.state / f"stats-{name}.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def make(self) -> RunDir:
        for d in (self.root, self.results, self.logs, self.state):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def make_writable(self) -> RunDir:
        """make(), then prove a file can be written there; an OSError becomes a ConfigError naming run.dir."""
        from slurmgen.errors import ConfigError

        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"run.dir={self.root} is a file, not a directory; choose another run.dir "
                              "(a new or an existing run's directory) or move the file away")
        try:
            self.make()
            with tempfile.TemporaryFile(dir=self.state):
                pass
        except OSError as exc:
            raise ConfigError(f"run.dir={self.root} cannot be written ({exc.strerror or exc}: "
                              f"{exc.filename or self.root}); choose a run.dir on a filesystem you can write, "
                              "e.g. run.dir=$HOME/runs/NAME") from None
        return self


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file so that readers see either the old or the whole new content."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

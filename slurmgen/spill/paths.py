"""Where a run's spill stores live: node-local scratch, one LMDB per node."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from slurmgen.config.types import SpillConf


def spill_root(conf: SpillConf, run_root: Path) -> Path:
    base = Path(conf.dir) if conf.dir else Path(tempfile.gettempdir()) / "slurmgen-spill"
    return base / hashlib.blake2b(str(run_root).encode(), digest_size=6).hexdigest()


def store_path(conf: SpillConf, run_root: Path, node: str) -> Path:
    return spill_root(conf, run_root) / node

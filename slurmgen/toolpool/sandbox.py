"""How a pool member runs: a plain process, under bubblewrap, or in an Apptainer image.

The same server code runs in all three (``python -m slurmgen.toolpool.server``); only
the command line around it changes. These are pure functions of the config, except
``check_bwrap``, which tries bubblewrap once so a machine without it (or without user
namespaces) fails the run before anything starts, with a message saying what to do.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slurmgen.errors import ConfigError

SANDBOXES = ("none", "bwrap", "apptainer")
CONTAINER_PYTHON = "python3"  # the interpreter inside the Apptainer image


def server_argv(python: str, run_dir: Path | str, name: str) -> list[str]:
    return [python, "-m", "slurmgen.toolpool.server", "--run-dir", str(run_dir), "--name", name]


def _python_paths_in_tmp() -> list[str]:
    """This interpreter's files that live under /tmp (a venv there), hidden by the private /tmp."""
    candidates = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
                  *(p for p in sys.path if p)}
    under = sorted(p for p in candidates if (p == "/tmp" or p.startswith("/tmp/")) and os.path.exists(p))
    return [p for i, p in enumerate(under) if not any(p.startswith(q + "/") for q in under[:i])]


def bwrap_prefix(run_dir: Path | str, binds: Sequence[str] = (), keep: list[str] | None = None) -> list[str]:
    """Read-only view of the host, private /tmp, /dev and /proc, new PID/IPC/UTS
    namespaces; the run directory is the only writable path. The network is shared: the
    member serves peers over TCP and reaches the registry. ``keep`` (default: this
    Python's own paths under /tmp) stays visible, read-only, over the private /tmp."""
    argv = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path in [*(_python_paths_in_tmp() if keep is None else keep), *binds]:
        argv += ["--ro-bind", path, path]
    argv += ["--bind", str(run_dir), str(run_dir), "--"]
    return argv


def apptainer_argv(tp: Any, run_dir: Path | str, inner: list[str]) -> list[str]:
    """``apptainer exec`` of ``inner`` in ``toolpool.image``, built with spython.

    The run directory is bound at the same path (keys, config, logs); the host network
    is kept (the member is a server).
    """
    if not tp.image:
        raise ConfigError("toolpool.sandbox=apptainer needs toolpool.image=<path to the .sif> "
                          "(build it from agents/<workflow>/*.def)")
    from spython.main import Client

    binds = [f"{run_dir}:{run_dir}", *(f"{b}:{b}:ro" for b in tp.binds)]
    cmd = Client._init_command("exec")
    cmd[0] = tp.apptainer_bin  # spython writes "singularity"; Apptainer keeps the same CLI
    cmd = [c for c in cmd if c != "--quiet"]
    for bind in binds:  # spython's own bind helper exits when a path is missing on this host
        cmd += ["--bind", bind]
    cmd += list(tp.apptainer_options)
    return [*cmd, tp.image, *inner]


def pool_command(conf: Any, run_dir: Path | str, name: str, python: str = sys.executable) -> list[str]:
    tp = conf.toolpool
    if tp.sandbox not in SANDBOXES:
        raise ConfigError(f"toolpool.sandbox={tp.sandbox!r} is unknown; valid: {', '.join(SANDBOXES)}")
    if tp.on_lost not in ("restart", "fail"):
        raise ConfigError(f"toolpool.on_lost={tp.on_lost!r} is unknown; valid: restart, fail")
    if tp.sandbox == "apptainer":
        return apptainer_argv(tp, run_dir, server_argv(CONTAINER_PYTHON, run_dir, name))
    inner = server_argv(python, run_dir, name)
    if tp.sandbox == "bwrap":
        return [*bwrap_prefix(run_dir, list(tp.binds)), *inner]
    return inner


@functools.lru_cache(maxsize=1)
def check_bwrap() -> None:
    """Raise ConfigError unless bubblewrap is installed and can make its namespaces here."""
    if shutil.which("bwrap") is None:
        raise ConfigError("toolpool.sandbox=bwrap but bubblewrap is not installed: install it "
                          "(apt-get install bubblewrap) or use toolpool.sandbox=none")
    probe = subprocess.run([*bwrap_prefix("/tmp"), "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        raise ConfigError(f"toolpool.sandbox=bwrap: bubblewrap cannot run here ({probe.stderr.strip()}); "
                          "allow unprivileged user namespaces or use toolpool.sandbox=none")

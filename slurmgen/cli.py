"""The command line: Hydra composes the config; the driver runs it.

The subcommands that only read a run directory (``export``, ``status``, ``view``,
``plan``, ``regrade``) are dispatched before Hydra is imported, so that they start quickly.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig


def _hydra_main(cfg: DictConfig) -> int:
    """Hydra's task function (module level: hydra/launcher=submitit pickles it)."""
    from slurmgen.config.load import typed
    from slurmgen.errors import SlurmgenError
    from slurmgen.run.driver import run_or_explain
    from slurmgen.run.sweep import job_run_dir

    try:
        conf = typed(cfg)
        conf.run.dir = job_run_dir(conf.run.dir)
    except SlurmgenError as exc:
        print(f"slurmgen: error: {exc}", file=sys.stderr)
        sys.exit(2)
    code = run_or_explain(conf)
    if code:
        sys.exit(code)
    return code


def _run_hydra() -> None:
    import hydra

    from slurmgen.config.load import register_all

    register_all()
    hydra.main(version_base="1.3", config_path="pkg://slurmgen.configs", config_name="config")(_hydra_main)()


SUBCOMMANDS = {  # name -> "module:function(argv) -> exit code"
    "export": "slurmgen.export.cli:main",
    "status": "slurmgen.run.status:main",
    "view": "slurmgen.view.cli:main",
    "plan": "slurmgen.capacity.cli:main",
    "regrade": "slurmgen.run.regrade:main",
}


def main() -> None:
    if sys.argv[1:2] and sys.argv[1] in SUBCOMMANDS:
        import importlib

        module, _, function = SUBCOMMANDS[sys.argv[1]].partition(":")
        sys.exit(getattr(importlib.import_module(module), function)(sys.argv[2:]))
    from slurmgen.config.overrides import check_overrides, open_keys
    from slurmgen.errors import SlurmgenError

    try:
        check_overrides(sys.argv[1:])
    except SlurmgenError as exc:
        print(f"slurmgen: error: {exc}", file=sys.stderr)
        sys.exit(2)
    from hydra_plugins.slurmgen_launcher import register

    register()  # hydra/launcher=submitit: found even from an editable install
    sys.argv[1:] = open_keys(sys.argv[1:])
    _run_hydra()

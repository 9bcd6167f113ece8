"""The command line: Hydra composes the config; the driver runs it.

The subcommands that only read a run directory (``export``, ``status``, ``view``, ``plan``) are
dispatched before Hydra is imported, so that they start quickly.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig


def _hydra_main(cfg: DictConfig) -> int:
    """Hydra's task function (module level: hydra/launcher=submitit pickles it)."""
    from slurmgen.confload import typed
    from slurmgen.driver import run_or_explain
    from slurmgen.errors import SlurmgenError
    from slurmgen.sweep import job_run_dir

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

    from slurmgen.confload import register_all

    register_all()
    hydra.main(version_base="1.3", config_path="pkg://slurmgen.configs", config_name="config")(_hydra_main)()


def main() -> None:
    if sys.argv[1:2] == ["export"]:
        from slurmgen.export.cli import main as export_main

        sys.exit(export_main(sys.argv[2:]))
    if sys.argv[1:2] == ["status"]:
        from slurmgen.status import main as status_main

        sys.exit(status_main(sys.argv[2:]))
    if sys.argv[1:2] == ["plan"]:
        from slurmgen.plan.cli import main as plan_main

        sys.exit(plan_main(sys.argv[2:]))
    if sys.argv[1:2] == ["view"]:
        from slurmgen.view.cli import main as view_main

        sys.exit(view_main(sys.argv[2:]))
    from slurmgen.errors import SlurmgenError
    from slurmgen.overrides import check_overrides, open_keys

    try:
        check_overrides(sys.argv[1:])
    except SlurmgenError as exc:
        print(f"slurmgen: error: {exc}", file=sys.stderr)
        sys.exit(2)
    from hydra_plugins.slurmgen_launcher import register

    register()  # hydra/launcher=submitit: found even from an editable install
    sys.argv[1:] = open_keys(sys.argv[1:])
    _run_hydra()

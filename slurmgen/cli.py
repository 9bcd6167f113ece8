"""The command line: Hydra composes the config; the driver runs it."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from slurmgen.config.load import register_all, typed
from slurmgen.config.overrides import check_overrides, open_keys
from slurmgen.errors import SlurmgenError
from slurmgen.run.sweep import job_run_dir

register_all()


@hydra.main(version_base="1.3", config_path="pkg://slurmgen.configs", config_name="config")
def _hydra_main(cfg: DictConfig) -> int:
    from slurmgen.run.driver import run_or_explain

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


def main() -> None:
    if sys.argv[1:2] == ["export"]:
        from slurmgen.export.cli import main as export_main

        sys.exit(export_main(sys.argv[2:]))
    if sys.argv[1:2] == ["regrade"]:
        from slurmgen.run.regrade import main as regrade_main

        sys.exit(regrade_main(sys.argv[2:]))
    if sys.argv[1:2] == ["status"]:
        from slurmgen.run.status import main as status_main

        sys.exit(status_main(sys.argv[2:]))
    try:
        check_overrides(sys.argv[1:])
    except SlurmgenError as exc:
        print(f"slurmgen: error: {exc}", file=sys.stderr)
        sys.exit(2)
    from hydra_plugins.slurmgen_launcher import register

    register()  # hydra/launcher=submitit: found even from an editable install
    sys.argv[1:] = open_keys(sys.argv[1:])
    _hydra_main()

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


# name -> (module with main(argv) -> int, one line of help); `slurmgen NAME --help` shows its own help
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "status": ("slurmgen.run.status", "how a run is going or went: tasks, reasons, tokens/s (--output json)"),
    "export": ("slurmgen.export.cli", "a training set (jsonl, parquet, hf) from a run's records"),
    "report": ("slurmgen.report.__main__", "(re)write RUN/report.html"),
    "render": ("slurmgen.launchers.render", "sbatch scripts for a run, nothing submitted"),
}

USAGE = """usage: slurmgen [workflow=NAME] [KEY=VALUE ...]   run a workflow (the driver; Hydra overrides)
       slurmgen COMMAND ... [--help]

commands:
{commands}

Run `slurmgen COMMAND --help` for a command's options. The run's config keys and their
defaults follow (Hydra's help; `slurmgen workflow=NAME --cfg job` prints one workflow's).
"""


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    return USAGE.format(commands="\n".join(f"  {n:<{width}}  {h}" for n, (_, h) in SUBCOMMANDS.items()))


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command in SUBCOMMANDS:
        import importlib

        sys.exit(importlib.import_module(SUBCOMMANDS[command][0]).main(sys.argv[2:]))
    if command in ("-h", "--help"):
        print(_usage())
        sys.stdout.flush()
    try:
        check_overrides(sys.argv[1:])
    except SlurmgenError as exc:
        print(f"slurmgen: error: {exc}", file=sys.stderr)
        sys.exit(2)
    from hydra_plugins.slurmgen_launcher import register

    register()  # hydra/launcher=submitit: found even from an editable install
    sys.argv[1:] = open_keys(sys.argv[1:])
    _hydra_main()

"""The command line: Hydra composes the config; the driver runs it.

The subcommands that only read a run directory (``export``, ``status``, ``view``,
``plan``, ``report``, ``regrade``) are dispatched before Hydra is imported, so that they start quickly;
``--help`` lists them, then Hydra's help follows.
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


SUBCOMMANDS = {  # name -> "module:function(argv) -> exit code"; each has its own --help
    "export": "slurmgen.export.cli:main",
    "status": "slurmgen.run.status:main",
    "view": "slurmgen.view.cli:main",
    "plan": "slurmgen.capacity.cli:main",
    "regrade": "slurmgen.run.regrade:main",
    "report": "slurmgen.report.__main__:main",
    "render": "slurmgen.launchers.render:main",
}

HELP = {  # one line per subcommand for `slurmgen --help`
    "status": "how a run is going or went: tasks, reasons, tokens/s (--output json)",
    "export": "a training set (jsonl, parquet, hf) from a run's records",
    "view": "the records in the browser (filters, one record as a conversation)",
    "plan": "size a run from a measurement: replicas, peers, nodes, GPU-hours",
    "report": "(re)write RUN/report.html",
    "render": "sbatch scripts for a run, nothing submitted",
    "regrade": "every record's reward again from its trajectory (tau2), new records beside the old",
}

USAGE = """usage: slurmgen [workflow=NAME] [KEY=VALUE ...]   run a workflow (the driver; Hydra overrides)
       slurmgen COMMAND ... [--help]

commands:
{commands}

Run `slurmgen COMMAND --help` for a command's options. The run's config groups and keys
follow (Hydra's help; `slurmgen workflow=NAME --cfg job` prints one workflow's whole config).
"""


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    return USAGE.format(commands="\n".join(f"  {n:<{width}}  {HELP.get(n, '')}" for n in SUBCOMMANDS))


def main() -> None:
    if sys.argv[1:2] and sys.argv[1] in SUBCOMMANDS:
        import importlib

        module, _, function = SUBCOMMANDS[sys.argv[1]].partition(":")
        sys.exit(getattr(importlib.import_module(module), function)(sys.argv[2:]))
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(usage(), flush=True)  # then Hydra's own help
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

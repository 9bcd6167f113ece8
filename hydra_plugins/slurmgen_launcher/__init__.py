"""``hydra/launcher=submitit``: hydra-submitit-launcher's SLURM launcher, with the driver
job's resources checked against the partition's nodes — and its ``auto`` sizes resolved —
before its sbatch (slurmgen/launchers/fit.py).

Hydra instantiates launchers only from the ``hydra_plugins`` package, hence this module.
slurmgen's command line also registers it explicitly (``register``), so it works from an
editable install too, whose namespace portions Hydra's plugin scan does not see.
configs/hydra/launcher/submitit.yaml selects it; every key of hydra-submitit-launcher's
``submitit_slurm`` still applies.
"""

# No ``from __future__ import annotations``: Hydra's plugin scan executes this module before
# it is in sys.modules, and dataclasses then cannot resolve string annotations. slurmgen
# itself is imported lazily, as hydra-submitit-launcher imports submitit, to keep every
# Hydra app's plugin scan fast.
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

if TYPE_CHECKING:
    from slurmgen.launchers.fit import Ask, Node

WHERE = "hydra.launcher"
AUTO = "auto"


@dataclass
class SlurmgenQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.slurmgen_launcher.FitSlurmLauncher"
    # memory per node: a number of GB, auto (the job's share of a node's memory) or null
    # (the partition's default)
    mem_gb: Any = None
    # CPUs of the driver: a number, auto (every CPU of the smallest node) or null (SLURM's 1)
    cpus_per_task: Any = None


class FitSlurmLauncher(SlurmLauncher):
    """Checks the driver job against ``sinfo`` (one call), then submits it as the stock launcher does."""

    params: dict[str, Any]  # set by the stock launcher's __init__ (its submitit parameters)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from slurmgen.errors import SlurmgenError
        from slurmgen.launchers.fit import read_nodes

        try:
            self.params = fit_driver(self.params, read_nodes())
        except SlurmgenError as exc:
            print(f"slurmgen: error: {exc}", file=sys.stderr)
            sys.exit(int(exc.exit_code))
        print(f"slurmgen: submitting {len(job_overrides)} driver job(s) named {self.params['name']} "
              f"({_shape(self.params)}) and waiting for them (`squeue --name={self.params['name']}`)",
              file=sys.stderr, flush=True)
        returns = super().launch(job_overrides, initial_job_idx)
        for ret in returns:
            print(f"slurmgen: {_ended(ret, self.params['submitit_folder'])}", file=sys.stderr, flush=True)
        return returns


def driver_ask(params: dict[str, Any]) -> "Ask":
    """The driver job's request, from the launcher's resolved parameters."""
    from slurmgen.config.types import SlurmJobConf
    from slurmgen.launchers import fit

    mem_gb, cpus = params.get("mem_gb"), params.get("cpus_per_task")
    res = SlurmJobConf(partition=params.get("partition") or "", time_min=int(params.get("timeout_min") or 0),
                       cpus_per_task=1 if cpus is None else cpus, mem=_mem_text(mem_gb),
                       gpus_per_node=int(params.get("gpus_per_node") or 0))
    return fit.Ask(str(params.get("name")), WHERE, res, keys={"mem": "mem_gb", "time_min": "timeout_min"},
                   shown={"mem": str(mem_gb)})


def fit_driver(params: dict[str, Any], nodes: Sequence["Node"]) -> dict[str, Any]:
    """The launcher's parameters, checked against the nodes, with auto sizes as numbers.

    ``mem_gb: auto`` becomes submitit's ``mem`` (MB, exact) and ``mem_gb`` is dropped."""
    from slurmgen.launchers import fit

    ask = driver_ask(params)
    resolved = fit.fit([ask], nodes)[0]
    out = dict(params)
    if _is_auto(params.get("cpus_per_task")):
        out["cpus_per_task"] = resolved.cpus_per_task
    if _is_auto(params.get("mem_gb")):
        out["mem_gb"], out["mem"] = None, resolved.mem
    return out


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == AUTO


def _mem_text(mem_gb: Any) -> str:
    """mem_gb as sbatch --mem text: "" = the partition's default."""
    from slurmgen.errors import ConfigError

    if mem_gb is None or _is_auto(mem_gb):
        return "" if mem_gb is None else AUTO
    try:
        gb = float(mem_gb)
    except (TypeError, ValueError):
        raise ConfigError(f"{WHERE}.mem_gb={mem_gb}: a number of GB, auto, or null (the partition's default)") from None
    return f"{gb:g}G"


def _shape(params: dict[str, Any]) -> str:
    mem = params.get("mem") or (f"{params['mem_gb']}G" if params.get("mem_gb") else "partition default")
    return (f"partition {params.get('partition') or 'default'}, {params.get('cpus_per_task') or 1} CPUs, "
            f"mem {mem}, {params.get('timeout_min')} min")


def _ended(ret: JobReturn, folder: str) -> str:
    """One line per driver job: its id, how it ended, and its log (submitit's layout)."""
    job_id = str(ret.hydra_cfg.hydra.job.id) if ret.hydra_cfg is not None else "?"
    log = f"{folder.replace('%j', job_id)}/{job_id}_0_log.out"
    return f"driver job {job_id} ended {ret.status.name}; its output: {log}"


def register() -> None:
    """Make Hydra know the launcher and its config (an editable install's plugin scan misses them)."""
    Plugins.instance().register(FitSlurmLauncher)


ConfigStore.instance().store(group="hydra/launcher", name="slurmgen_submitit", node=SlurmgenQueueConf,
                             provider="slurmgen")

"""Heterogeneous SLURM jobs through submitit, which has no API for them.

The documented workaround, wrapped here so it is tested in one place:

* the first component's resources are ordinary submitit parameters;
* every further component is a ``#SBATCH hetjob`` separator followed by its own
  ``#SBATCH`` resource lines, passed as the first ``setup`` lines (submitit writes
  ``setup`` right after its header, so sbatch still parses them as directives);
* ``srun --het-group=0,1,..`` (``srun_args``) starts one task in every component;
  the job function reads its component from ``SLURM_PROCID`` (= rank);
* the job folder must not contain ``%j``: the second component's output would go to
  ``<folder>/<jobid+1>/``, which does not exist, and srun fails.

Slurm rejects arrays of heterogeneous jobs: submit each with ``executor.submit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import ConfigError
from slurmgen.launchers.resources import directives, job_conf, job_name, submitit_params


def check_folder(folder: Path | str) -> None:
    if "%j" in str(folder):
        raise ConfigError(f"a heterogeneous job's submitit folder must not contain %j (got {folder}): "
                          "srun would write the second component's output into a missing directory")


def hetjob_params(conf: SlurmgenConf, components: list[str]) -> dict[str, Any]:
    """submitit parameters for one job packing one task of each component (the first leads)."""
    if not components:
        raise ConfigError("a heterogeneous job needs at least one component")
    params = submitit_params(conf, components[0])
    if len(components) == 1:
        return params
    lead = job_conf(conf, components[0])
    header = [f"#SBATCH {d}" for d in lead.extra_directives]
    shell = list(lead.setup)
    for component in components[1:]:
        header += ["#SBATCH hetjob", "#SBATCH --ntasks=1"] + [f"#SBATCH {d}" for d in directives(conf, component)]
        shell += job_conf(conf, component).setup
    params["setup"] = header + shell
    params["srun_args"] = [f"--het-group={','.join(str(i) for i in range(len(components)))}"]
    params["job_name"] = job_name(conf, "het")
    return params

"""Generated sbatch text is pinned by golden files in tests/golden/.

On a mismatch the test prints a line diff and the command that regenerates them:
    SLURMGEN_REGEN_GOLDEN=1 python -m pytest tests/unit/test_sbatch_golden.py
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from submitit.slurm.slurm import _make_sbatch_string

from slurmgen.agents.coral.conf import CoralConf
from slurmgen.agents.nr.conf import NRConf
from slurmgen.config.types import LLMConf, SlurmgenConf, SlurmJobConf
from slurmgen.errors import ConfigError
from slurmgen.launchers.hetjob import check_folder, hetjob_params
from slurmgen.launchers.render import fill, render_all

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
REGEN = "SLURMGEN_REGEN_GOLDEN=1 python -m pytest tests/unit/test_sbatch_golden.py"
RUN = Path("/shared/runs/nr-demo")
PYTHON = "/opt/venv/bin/python"


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SLURMGEN_REGEN_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if not path.exists():
        pytest.fail(f"no golden file {path}; create it with: {REGEN}")
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            f"golden/{name}", "rendered"))
        pytest.fail(f"{name} differs from its golden file:\n{diff}\nIf the change is intended: {REGEN}")


def demo_conf() -> SlurmgenConf:
    c = SlurmgenConf(workflow=NRConf())
    c.cluster.kind = "slurm"
    c.cluster.account = "synth"
    c.llm.slurm.partition = "gpu"
    c.llm.slurm.gpus_per_node = 1
    c.llm.slurm.mem = "64G"
    c.llm.slurm.time_min = 240
    c.llm.slurm.extra_directives = ["--constraint=a100"]
    c.llm.slurm.setup = ["module load cuda/12.1"]
    c.cluster.peer.partition = "cpu"
    c.cluster.peer.setup = ["source /opt/venv/bin/activate"]
    c.llm.replicas = 2
    c.run.peers = 4
    return c


@pytest.mark.parametrize("name", ["registry.sbatch", "llm.sbatch", "peers.sbatch", "hetjob.sbatch", "submit.sh"])
def test_rendered_templates_match_golden(name: str) -> None:
    assert_golden(f"sbatch/{name}", render_all(demo_conf(), RUN, PYTHON)[name])


def two_pool_conf() -> SlurmgenConf:
    """The demo with a second LLM pool: a 70B teacher on 4 GPUs for coral's teacher role."""
    c = demo_conf()
    c.workflow = CoralConf()
    c.llms["teacher"] = LLMConf(backend="vllm", model="llama-3.1-70b", model_path="/models/llama-3.1-70b",
                                replicas=1, extra_args=["--tensor-parallel-size", "4"],
                                server_env={"VLLM_WORKER_MULTIPROC_METHOD": "spawn"},
                                slurm=SlurmJobConf(partition="gpu", gpus_per_node=4, mem="320G", time_min=240))
    c.workflow.role_llm = {"teacher": "teacher"}
    return c


@pytest.mark.parametrize("name", ["llm.sbatch", "llm-teacher.sbatch", "hetjob.sbatch", "submit.sh"])
def test_a_two_pool_run_renders_an_array_per_pool(name: str) -> None:
    assert_golden(f"sbatch-two-pools/{name}", render_all(two_pool_conf(), RUN, PYTHON)[name])


def test_a_two_pool_hetjob_has_a_component_per_pool() -> None:
    c = two_pool_conf()
    c.cluster.hetjob = True
    out = render_all(c, RUN, PYTHON)
    assert "UNIT=$i hetjob.sbatch" in out["submit.sh"] and "llm-teacher.sbatch" not in out["submit.sh"]
    assert out["hetjob.sbatch"].count("#SBATCH hetjob") == 2
    assert "--het-group=1 " in out["hetjob.sbatch"] and '--name "llm-teacher-${UNIT}"' in out["hetjob.sbatch"]


def test_hetjob_submit_script_renders_the_het_loop() -> None:
    c = demo_conf()
    c.cluster.hetjob = True
    assert "UNIT=$i hetjob.sbatch" in render_all(c, RUN, PYTHON)["submit.sh"]


def test_openai_backend_renders_no_server_jobs() -> None:
    c = demo_conf()
    c.llm.backend = "openai"
    out = render_all(c, RUN, PYTHON)
    assert "llm.sbatch" not in out and "sbatch llm.sbatch" not in out["submit.sh"]


def test_a_missing_placeholder_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"no value for \{\{shards\}\}"):
        fill("x {{shards}}", {"run_dir": "/r"})


def _hetjob_sbatch() -> str:
    params = hetjob_params(demo_conf(), ["llm", "peer"])
    return _make_sbatch_string(command=f"{PYTHON} -u -m submitit.core._submit {RUN}/slurm/het",
                               folder=f"{RUN}/slurm/het", **params)


def test_hetjob_adapter_text_matches_golden() -> None:
    assert_golden("hetjob_submitit.sh", _hetjob_sbatch())


def test_hetjob_adapter_puts_every_directive_before_the_first_command() -> None:
    lines = _hetjob_sbatch().splitlines()
    first_command = next(i for i, ln in enumerate(lines) if ln and not ln.startswith("#"))
    het = lines.index("#SBATCH hetjob")
    assert het < first_command
    assert all(not ln.startswith("#SBATCH") for ln in lines[first_command:])
    assert "#SBATCH --partition=gpu" in lines[:het] and "#SBATCH --partition=cpu" in lines[het:]
    assert "--het-group=0,1" in lines[-1] or any("--het-group=0,1" in ln for ln in lines)


def test_hetjob_adapter_refuses_a_folder_with_job_id() -> None:
    with pytest.raises(ConfigError, match="must not contain %j"):
        check_folder("/run/slurm/%j")


def test_a_single_component_is_an_ordinary_job() -> None:
    params = hetjob_params(demo_conf(), ["peer"])
    assert "srun_args" not in params and not any("hetjob" in ln for ln in params["setup"])

"""llm.server_env reaches the servers: in the plan (local and SLURM launchers) and the sbatch templates."""

from pathlib import Path

from slurmgen.agents.nr.conf import NRConf
from slurmgen.config.types import SlurmgenConf
from slurmgen.launchers.render import render_all
from slurmgen.run.plan import make_plan


def test_server_env_in_plan_and_templates(tmp_path):
    conf = SlurmgenConf(workflow=NRConf())
    conf.llm.server_env = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "4"}
    plan = make_plan(conf, tmp_path)
    assert all(s.env == conf.llm.server_env for s in plan.services) and plan.services
    assert all(p.env == {} for p in plan.peers)
    rendered = render_all(conf, Path("/shared/run"), python="/venv/bin/python")
    llm = next(text for name, text in rendered.items() if "llm" in name)
    assert "export HF_HUB_OFFLINE=1" in llm and "export VLLM_CPU_KVCACHE_SPACE=4" in llm

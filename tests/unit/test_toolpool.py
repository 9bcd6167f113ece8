"""Tool pools: the session table, the sandbox command lines (Apptainer golden text), the plan."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from slurmgen.config.load import workflow_classes
from slurmgen.config.types import SlurmgenConf, ToolPoolConf
from slurmgen.errors import ConfigError
from slurmgen.run.plan import make_plan, sim_script
from slurmgen.toolpool import sandbox
from slurmgen.toolpool.session import PoolFull, SessionHost, UnknownSession, pool_size

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "toolpool"


class Counter:
    def __init__(self, spec: dict) -> None:
        self.n = spec.get("start", 0)
        self.closed = False

    def call(self, method: str, args: dict) -> int:
        self.n += args.get("by", 1)
        return self.n

    def close(self) -> None:
        self.closed = True


def test_session_host_open_call_close_and_idempotent_open() -> None:
    host = SessionHost(Counter, capacity=2, idle_s=100)
    host.open("t:0#0/env", {"start": 10})
    assert host.call("t:0#0/env", "add", {"by": 5}) == 15
    host.open("t:0#0/env", {"start": 0})  # a duplicate open keeps the live session
    assert host.call("t:0#0/env", "add", {}) == 16
    assert host.close("t:0#0/env") and not host.close("t:0#0/env")
    with pytest.raises(UnknownSession):
        host.call("t:0#0/env", "add", {})


def test_session_host_capacity_and_idle_sweep() -> None:
    now = [0.0]
    host = SessionHost(Counter, capacity=2, idle_s=10, clock=lambda: now[0])
    host.open("a", {})
    host.open("b", {})
    with pytest.raises(PoolFull):
        host.open("c", {})
    now[0] = 5.0
    host.call("a", "add", {})
    now[0] = 12.0
    assert host.sweep() == ["b"]
    assert "a" in host and len(host) == 1


def test_a_new_attempt_of_a_task_closes_the_older_attempts_session() -> None:
    host = SessionHost(Counter, capacity=2, idle_s=1800)
    host.open("t:0#0/env", {})
    host.open("t:0#0/db", {})  # another name of the same task: left alone
    host.open("t:0#1/env", {})  # the task was issued again: attempt 0 is given up
    assert "t:0#0/env" not in host and "t:0#0/db" in host and host.superseded == 1 and len(host) == 2
    with pytest.raises(UnknownSession, match="superseded"):
        host.open("t:0#0/env", {})  # the old attempt, late: it may not take the slot back
    assert host.close("t:0#1/env") and "t:0#1/env" not in host
    host.open("t:0#2/env", {})
    assert host.superseded == 1, "nothing to supersede once the older session was closed"


def _conf(workflow: str = "tau2", **tp: object) -> SlurmgenConf:
    """A config of a registered workflow: tau2 has a tool-pool factory and two sim scripts."""
    return SlurmgenConf(workflow=workflow_classes()[workflow](), toolpool=ToolPoolConf(**tp))  # type: ignore[arg-type]


def test_apptainer_command_golden() -> None:
    conf = _conf(sandbox="apptainer", image="/images/tau2.sif", binds=["/datasets/tau2"])
    argv = make_plan(conf, Path("/scratch/runs/tau2-1"), python="/opt/venv/bin/python")
    pools = [s for s in argv.services if s.component == "toolpool"]
    text = "\n".join(shlex.join(s.argv) for s in pools) + "\n"
    golden = GOLDEN / "apptainer_pools.txt"
    assert text == golden.read_text(), f"update {golden} if the change is intended:\n{text}"


def test_apptainer_needs_an_image() -> None:
    with pytest.raises(ConfigError, match="toolpool.image"):
        make_plan(_conf(sandbox="apptainer"), Path("/r"))


def test_plain_and_bwrap_commands() -> None:
    plain = sandbox.pool_command(_conf(), "/r", "pool-0", python="/py")
    assert plain == ["/py", "-m", "slurmgen.toolpool.server", "--run-dir", "/r", "--name", "pool-0"]
    wrapped = sandbox.pool_command(_conf(sandbox="bwrap", binds=["/data"]), "/r", "pool-1", python="/py")
    assert wrapped[0] == "bwrap" and wrapped[-7:] == ["/py", "-m", "slurmgen.toolpool.server", "--run-dir", "/r",
                                                      "--name", "pool-1"]
    joined = " ".join(wrapped)
    assert "--ro-bind / /" in joined and "--tmpfs /tmp" in joined and "--bind /r /r" in joined
    assert "--ro-bind /data /data" in joined and "--unshare-pid" in joined and "--die-with-parent" in joined


def test_bwrap_keeps_a_venv_under_tmp_visible() -> None:
    argv = sandbox.bwrap_prefix("/r", keep=["/tmp/venv"])
    assert argv.index("--tmpfs") < argv.index("/tmp/venv")


def test_unknown_sandbox_and_policy_fail_early() -> None:
    with pytest.raises(ConfigError, match="toolpool.sandbox"):
        make_plan(_conf(sandbox="docker"), Path("/r"))
    with pytest.raises(ConfigError, match="toolpool.on_lost"):
        make_plan(_conf(on_lost="ignore"), Path("/r"))


def test_pool_size_defaults_to_the_workflow() -> None:
    assert pool_size(_conf()) == 2
    assert pool_size(_conf(size=3)) == 3
    assert pool_size(_conf("nr")) == 0  # nr has no tool-pool factory
    plan = make_plan(_conf(size=3), Path("/r"), python=sys.executable)
    assert [s.name for s in plan.services if s.component == "toolpool"] == ["pool-0", "pool-1", "pool-2"]


def test_named_sim_scripts() -> None:
    conf = _conf()
    assert sim_script(conf) == "tau2/default"  # the sim finds it in the workflow registry
    conf.llm.script = "oracle"
    assert sim_script(conf) == "tau2/oracle"
    conf.llm.script = "other.mod:fn"
    assert sim_script(conf) == "other.mod:fn"


def test_a_workflow_with_a_factory_needs_a_pool() -> None:
    with pytest.raises(ConfigError, match="toolpool.size=0"):
        make_plan(_conf(size=0), Path("/r"))


def test_missing_bubblewrap_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.check_bwrap.cache_clear()
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    try:
        with pytest.raises(ConfigError, match="apt-get install bubblewrap"):
            make_plan(_conf(sandbox="bwrap"), Path("/r"))
    finally:
        sandbox.check_bwrap.cache_clear()


def test_slurm_hetjob_packs_llm_and_peer_and_leaves_pools_in_their_own_array(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    from slurmgen.launchers import slurm
    from slurmgen.rundir import RunDir

    conf = _conf()
    conf.cluster.kind, conf.cluster.hetjob, conf.run.peers, conf.llm.replicas = "slurm", True, 2, 2
    plan = make_plan(conf, tmp_path)
    launcher = slurm.SlurmLauncher(conf, RunDir(tmp_path))
    units: list[list[str]] = []
    arrays: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(launcher, "_submit", lambda unit: units.append([s.name for s in unit]))
    monkeypatch.setattr(launcher, "_submit_array", lambda c, group: arrays.append((c, [s.name for s in group])))
    monkeypatch.setattr(launcher, "_announce", lambda: None)
    monkeypatch.setattr(slurm.fit, "read_nodes", lambda: slurm.fit.parse_sinfo("node1|debug*|4|7231|(null)|infinite"))
    launcher.start_all([*plan.services, *plan.peers])
    assert units == [["llm-0", "peer-0"], ["llm-1", "peer-1"]]
    assert arrays == [("toolpool", ["pool-0", "pool-1"])]


def test_toolpool_sbatch_template_golden() -> None:
    from slurmgen.launchers.render import render_all

    conf = _conf(sandbox="apptainer", image="/images/tau2.sif", size=3)
    conf.cluster.kind = "slurm"
    conf.cluster.toolpool.partition = "cpu"
    conf.cluster.toolpool.cpus_per_task = 2
    conf.cluster.toolpool.setup = ["module load apptainer"]
    files = render_all(conf, Path("/shared/runs/tau2-demo"), "/opt/venv/bin/python")
    assert "sbatch toolpool.sbatch\n" in files["submit.sh"]
    text = files["toolpool.sbatch"]
    golden = GOLDEN / "toolpool.sbatch"
    assert text == golden.read_text(), f"update {golden} if the change is intended:\n{text}"

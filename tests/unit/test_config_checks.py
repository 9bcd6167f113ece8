"""Bad configuration fails before anything starts, naming the problem."""

import pytest

from slurmgen.config.load import typed, workflow_classes
from slurmgen.config.overrides import check_overrides
from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import ConfigError
from slurmgen.run.resume import differences
from tests.conftest import run_slurmgen


def test_workflows_are_found_through_entry_points():
    assert "nr" in workflow_classes()


@pytest.mark.parametrize("argv, needle", [
    (["workflow=nope"], "unknown workflow 'nope'; available: "),
    (["run.nope=1"], "valid keys of run: run.dir"),
    (["workflow.nope=1"], "workflow.filter_en"),
    (["nope=1"], "top-level groups"),
])
def test_unknown_keys_list_the_valid_ones(argv, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        check_overrides(argv)


def test_valid_overrides_and_hydra_flags_pass():
    check_overrides(["-m", "workflow=nr", "run.trials=2", "llm.extra_args=[--x]", "hydra/launcher=basic",
                     "hydra.verbose=true", "+run.seed=3", "--cfg", "job"])


def test_typed_config_rejects_a_wrong_type():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"workflow": {"name": "nr"}, "run": {"trials": "many"}})
    with pytest.raises(ConfigError, match="trials"):
        typed(cfg)


def test_resume_differences_only_report_pinned_keys():
    old = {"workflow": {"name": "nr", "filter_en": 0.8}, "run": {"seed": 0, "trials": 1}, "dataset": {"path": "a"}}
    new = {"workflow": {"name": "nr", "filter_en": 0.5}, "run": {"seed": 0, "trials": 3}, "dataset": {"path": "a"}}
    assert differences(old, new) == ["workflow.filter_en: 0.8 -> 0.5"]


@pytest.mark.parametrize("override, needle", [
    ("dataset.path=/definitely/not/here.jsonl", "does not exist"),
    ("dataset.path=/tmp", "is a directory"),
    ("workflow=zzz", "unknown workflow"),
    ("run.zzz=1", "unknown config key"),
    ("dataset.limit=-5", "dataset.limit=-5 is out of range: valid is >= 0"),
    ("run.trials=0", "run.trials=0 is out of range: valid is >= 1"),
    ("llm.replicas=0", "llm.replicas=0 is out of range: valid is >= 1"),
    ("run.max_failure_rate=1.5", "run.max_failure_rate=1.5 is out of range: valid is between 0 and 1"),
    ("run.lease_s=1", "must be more than run.lease_renew_s"),
    ("llm.backend=openai", "llm.backend=openai needs llm.urls"),
])
def test_cli_errors_before_anything_starts(tmp_path, override, needle):
    run_dir = tmp_path / "run"
    proc = run_slurmgen(override, f"run.dir={run_dir}", check=False, timeout=60)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert not run_dir.exists()


def test_resume_with_a_changed_workflow_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_slurmgen("workflow=nr", "dataset.limit=6", f"run.dir={run_dir}", "llm.time_scale=500", "llm.replicas=1",
                 "run.peers=1")
    proc = run_slurmgen("workflow=nr", "dataset.limit=6", f"run.dir={run_dir}", "workflow.filter_en=0.5",
                        check=False, timeout=60)
    assert proc.returncode == 2
    assert "workflow.filter_en: 0.8 -> 0.5" in proc.stderr


def test_schema_defaults_are_typed():
    conf = SlurmgenConf(workflow=workflow_classes()["nr"]())
    assert conf.run.trials == 1 and conf.llm.backend == "sim"


@pytest.mark.parametrize(("argv", "words"), [
    (["dataset.limit=abc"], "(dataset.limit is int)"),
    (["run.trials=1,x"], "Value 'x'"),
    (["workflow=nr", "workflow.filter_en=high"], "(workflow.filter_en is float)"),
    (["workflow=nr", "workflow.name=coral"], "e.g. workflow=coral"),
])
def test_wrong_values_are_refused_before_hydra(argv, words):
    with pytest.raises(ConfigError) as info:
        check_overrides(argv)
    assert words in str(info.value)


def test_values_hydra_reads_pass():
    check_overrides(["workflow=nr", "workflow.filter_sampling={temperature:0.5}", "run.trials=1,2", "run.seed=range(3)",
                     "run.dir=${oc.env:HOME}/x", "workflow.name=nr", "llms.judge.replicas=2"])

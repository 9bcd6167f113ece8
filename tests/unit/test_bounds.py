"""Every numeric knob's range is checked before anything starts, naming key, value and range."""

import dataclasses

import pytest

from slurmgen.config.bounds import BOUNDS, check_bounds, value_of
from slurmgen.config.load import workflow_classes
from slurmgen.config.types import SlurmgenConf
from slurmgen.errors import ConfigError


def conf() -> SlurmgenConf:
    return SlurmgenConf(workflow=workflow_classes()["nr"]())


def test_the_defaults_are_in_range():
    check_bounds(conf())


@pytest.mark.parametrize("bound", BOUNDS, ids=lambda b: b.key)
def test_every_bound_names_its_key_and_range(bound):
    c = conf()
    section, _, name = bound.key.rpartition(".")
    node = value_of(c, section)
    bad = -2 if not isinstance(getattr(node, name), float) else float("nan")
    setattr(node, name, type(getattr(node, name))(bad) if bad == bad else bad)
    if not bound.applies(c):
        pytest.skip("does not apply to the defaults' backend")
    with pytest.raises(ConfigError) as err:
        check_bounds(c)
    assert f"{bound.key}=" in str(err.value) and bound.valid in str(err.value)


def test_replicas_zero_is_fine_for_a_hosted_backend():
    c = conf()
    c.llm = dataclasses.replace(c.llm, backend="openai", replicas=0, urls=["http://127.0.0.1:9"])
    check_bounds(c)


def test_all_problems_are_listed_at_once():
    c = conf()
    c.run.trials = 0
    c.dataset.limit = -1
    with pytest.raises(ConfigError) as err:
        check_bounds(c)
    assert "run.trials=0" in str(err.value) and "dataset.limit=-1" in str(err.value)


def test_max_concurrency_must_give_each_peer_a_request():
    c = conf()
    c.run.peers, c.llm.max_concurrency = 4, 3
    with pytest.raises(ConfigError, match=r"llm.max_concurrency=3 is shared by run.peers=4"):
        check_bounds(c)
    c.llm.max_concurrency = 4
    check_bounds(c)

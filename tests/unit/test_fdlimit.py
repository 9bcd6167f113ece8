"""The open-file limit: raised to the hard limit at start, refused with the limit named when too low,
and the LLM client's share of it (its socket budget, its connections per replica)."""

from __future__ import annotations

import resource

import pytest

from slurmgen.config.types import LLMConf
from slurmgen.errors import ResourceLimitError
from slurmgen.llm.client import LLMClient
from slurmgen.llm.types import Endpoint
from slurmgen.proc import fdlimit


class FakeLimits:
    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.soft, self.hard, self.refuse = soft, hard, refuse

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        if self.refuse:
            raise ValueError("not allowed")
        self.soft, self.hard = limits


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch):
    def install(soft: int, hard: int, refuse: bool = False) -> FakeLimits:
        fake = FakeLimits(soft, hard, refuse)
        monkeypatch.setattr(fdlimit.resource, "getrlimit", fake.getrlimit)
        monkeypatch.setattr(fdlimit.resource, "setrlimit", fake.setrlimit)
        return fake

    return install


def test_the_soft_limit_is_raised_to_the_hard_limit(limits) -> None:
    fake = limits(1024, 65536)
    assert fdlimit.raise_nofile() == 65536
    assert (fake.soft, fake.hard) == (65536, 65536)
    assert fdlimit.connection_budget() == 65536 - fdlimit.RESERVE


def test_a_hard_limit_too_low_is_refused_naming_the_limit(limits) -> None:
    limits(64, 128)
    with pytest.raises(ResourceLimitError, match=r"RLIMIT_NOFILE.*ulimit -n.* is 128 \(hard limit 128\)"):
        fdlimit.raise_nofile()


def test_a_refused_raise_keeps_the_soft_limit(limits, caplog: pytest.LogCaptureFixture) -> None:
    limits(4096, 8192, refuse=True)
    assert fdlimit.raise_nofile() == 4096
    assert "cannot raise the open-file limit" in caplog.text


def test_the_client_never_opens_more_sockets_than_its_budget(limits) -> None:
    limits(1000, 1000)
    assert LLMClient().socket_budget == 1000 - fdlimit.RESERVE


def test_connections_per_replica_are_shared_by_the_peers() -> None:
    ep = Endpoint(url="http://a:8000", model="m")
    client = LLMClient.from_conf(LLMConf(max_connections_per_replica=4096), peers=3)
    assert client.max_connections_per_endpoint == 1366  # ceil(4096 / 3)
    assert client._cap(ep) == 1366
    assert client._cap(Endpoint(url="http://a:8000", model="m", capacity=100)) == 100  # the smallest cap
    assert LLMClient.from_conf(LLMConf(max_connections_per_replica=0), peers=3)._cap(ep) == 0  # unlimited

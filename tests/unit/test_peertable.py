from slurmgen.protocol import Member, Table
from slurmgen.registry.membership import MemberView
from slurmgen.registry.peertable import PeerTable


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def member(pid: str) -> Member:
    return Member(peer_id=pid, kind="peer", address=f"tcp://127.0.0.1:{len(pid)}")


def test_members_expire_after_missed_heartbeats_only():
    clock = Clock()
    table = PeerTable(heartbeat_s=1.0, liveness=3, clock=clock)
    table.register(member("a"))
    table.register(member("b"))
    clock.t = 2.5
    assert table.heartbeat("a")
    clock.t = 3.5
    assert table.expire() == ["b"]
    assert [m.peer_id for m in table.table().members] == ["a"]
    assert not table.heartbeat("b")  # unknown now: must register again


def test_version_moves_only_on_change():
    table = PeerTable(heartbeat_s=1.0, liveness=3, clock=Clock())
    table.register(member("a"))
    v = table.version
    table.register(member("a"))
    assert table.version == v
    table.remove("a")
    assert table.version == v + 1


def test_view_keeps_members_missing_from_a_new_table_for_a_grace_period():
    clock = Clock()
    view = MemberView(grace_s=5.0, clock=clock)
    view.apply(Table(version=3, members=[member("a"), member("b")]))
    clock.t = 1.0
    view.apply(Table(version=0, members=[member("a")]))  # a restarted registry, b not back yet
    assert set(view.members) == {"a", "b"}
    clock.t = 7.0
    view.apply(Table(version=1, members=[member("a")]))
    assert set(view.members) == {"a"}

from slurmgen.protocol import Member
from slurmgen.runtime.router import CreditRouter


def peers(**caps: int) -> list[Member]:
    return [Member(peer_id=p, kind="peer", address="x", roles=("a", "b"), capacity=c) for p, c in caps.items()]


def test_pick_prefers_most_free_credits_and_respects_capacity():
    r = CreditRouter()
    r.update(peers(p1=2, p2=1))
    picks = [r.pick("a") for _ in range(3)]
    assert sorted(picks) == ["p1", "p1", "p2"]
    assert r.pick("a") is None  # everyone full: the caller queues
    r.credit("p2")
    assert r.pick("b") == "p2"


def test_load_spreads_evenly_between_equal_peers():
    r = CreditRouter()
    r.update(peers(p1=100, p2=100))
    picks = [r.pick("a") for _ in range(100)]
    assert abs(picks.count("p1") - picks.count("p2")) <= 1


def test_unknown_role_and_forgotten_peer():
    r = CreditRouter()
    r.update(peers(p1=1))
    assert r.pick("zzz") is None
    assert r.pick("a") == "p1"
    r.forget("p1")
    assert r.free("p1") == 1


def test_peers_on_the_preferred_node_go_first_while_they_have_credits():
    r = CreditRouter()
    r.update([Member(peer_id=p, kind="peer", address="x", roles=("a",), capacity=2, node=n)
              for p, n in (("far1", "n2"), ("near", "n1"), ("far2", "n2"))])
    assert [r.pick("a", "n1") for _ in range(2)] == ["near", "near"]
    assert r.pick("a", "n1") in ("far1", "far2")  # near is full: load wins over locality
    assert r.pick("a", "n9") in ("far1", "far2")


def test_credits_lost_with_a_cut_off_peer_come_back_when_it_starts_over():
    r = CreditRouter()
    r.update(peers(p1=1, p2=1))
    assert {r.pick("a"), r.pick("a")} == {"p1", "p2"}  # sent while cut off: no credit ever comes back
    assert r.pick("a") is None
    r.reset()  # the registry had expired this peer: the others forgot what they owed it
    assert r.pick("a") in ("p1", "p2")

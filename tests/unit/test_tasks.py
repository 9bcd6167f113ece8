"""TaskSet: a per-task failure goes to its handler once; a failed loop is fatal; cancelling is not a failure."""

import asyncio
import logging

from slurmgen.proc.tasks import LoopEnded, TaskSet


async def boom(msg: str = "boom") -> None:
    await asyncio.sleep(0)
    raise ValueError(msg)


def test_a_failed_task_is_logged_once_with_its_id_and_handled(caplog):
    async def main() -> None:
        fatal: list[BaseException] = []
        ts = TaskSet("peer-0.x", on_fatal=fatal.append)
        handled: list[BaseException] = []
        ts.spawn(boom(), kind="hop", task_id="row-1:0", on_error=handled.append)
        ts.spawn(asyncio.sleep(0), kind="hop", task_id="row-2:0", on_error=handled.append)
        await asyncio.sleep(0.01)
        assert [str(e) for e in handled] == ["boom"] and not fatal and ts.fatal is None
        assert ts.failures == 1 and len(ts) == 0

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "row-1:0" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("task=row-1:0 hop of peer-0.x failed: ValueError: boom")


def test_a_failed_loop_or_a_loop_that_returns_is_fatal_and_only_the_first_counts():
    async def main() -> TaskSet:
        fatal: list[BaseException] = []
        ts = TaskSet("peer-0.x", on_fatal=fatal.append)
        ts.loop(boom("leases broke"), kind="leases")
        ts.loop(asyncio.sleep(0), kind="receiver")  # returned although it should run forever
        ts.loop(asyncio.sleep(0), kind="source", may_return=True)  # allowed to finish
        await asyncio.sleep(0.01)
        assert len(fatal) == 1
        return ts

    ts = asyncio.run(main())
    assert isinstance(ts.fatal, ValueError) and str(ts.fatal) == "leases broke"


def test_a_handler_that_cannot_save_the_work_makes_it_fatal_and_cancel_is_not_a_failure():
    async def main() -> TaskSet:
        ts = TaskSet("pool-0.y", on_fatal=lambda exc: None)

        def rethrow(exc: BaseException) -> None:
            raise exc

        ts.spawn(boom("disk full"), kind="coming home", task_id="t:0", on_error=rethrow)
        forever = ts.spawn(asyncio.Event().wait(), kind="hop", on_error=rethrow)
        loop = ts.loop(asyncio.Event().wait(), kind="heartbeats")
        await asyncio.sleep(0.01)
        await ts.cancel_all()
        assert forever.cancelled() and loop.cancelled() and len(ts) == 0
        return ts

    ts = asyncio.run(main())
    assert str(ts.fatal) == "disk full" and ts.failures == 1
    assert not isinstance(ts.fatal, LoopEnded)

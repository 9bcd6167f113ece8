"""Sessions and the table of sessions one pool member hosts (pure logic, no sockets)."""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

DEFAULT_POOL_SIZE = 2  # members started for a workflow that names a factory (toolpool.size=-1)


class Session(Protocol):
    """What a factory returns: one task's environment."""

    def call(self, method: str, args: Any) -> Any:
        """Run ``method``; the result must be JSON-encodable. Raising fails the task."""

    def close(self) -> None: ...


Factory = Callable[[Any], Session]


class UnknownSession(KeyError):
    """No such session here (never opened, closed, idle-dropped, or the member restarted)."""


class PoolFull(RuntimeError):
    """The member already hosts ``capacity`` sessions."""


def session_id(task_id: str, attempt: int, name: str) -> str:
    """Unique per task attempt: a re-issued task never reuses an older attempt's state."""
    return f"{task_id}#{attempt}/{name}"


def _parse(sid: str) -> tuple[str, int]:
    """``"t#2/env"`` -> (``"t/env"``, 2); an id of another shape is its own key, attempt 0."""
    task, sep, rest = sid.rpartition("#")
    attempt, slash, name = rest.partition("/")
    if not sep or not slash or not attempt.isdigit():
        return sid, 0
    return f"{task}/{name}", int(attempt)


def pool_factory(conf: Any) -> Factory | None:
    """The session factory: ``toolpool.factory`` (an import path), else the workflow's; None = none."""
    from slurmgen.config.workflows import get_workflow, import_path  # the registry imports the author module

    if conf.toolpool.factory:
        return import_path(conf.toolpool.factory, "toolpool.factory")
    return get_workflow(conf.workflow.name).toolpool_factory


def pool_size(conf: Any) -> int:
    """Members to start: ``toolpool.size``; -1 = 2 when there is a factory, else 0."""
    if conf.toolpool.size >= 0:
        return int(conf.toolpool.size)
    return DEFAULT_POOL_SIZE if pool_factory(conf) else 0



class SessionHost:
    """The sessions of one member: open (idempotent), call, close, drop the idle ones."""

    def __init__(self, factory: Factory, capacity: int, idle_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.factory = factory
        self.capacity = capacity
        self.idle_s = idle_s
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._used: dict[str, float] = {}
        self._attempts: dict[str, str] = {}  # "task/name" -> the session id of its latest attempt
        self.opened = self.closed = self.calls = self.dropped_idle = self.superseded = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    def open(self, session_id: str, spec: Any) -> None:
        """Create the session; a repeated open of a live session is a no-op (at-least-once)."""
        if session_id in self._sessions:
            self._used[session_id] = self.clock()
            return
        key, attempt = _parse(session_id)
        older = self._attempts.get(key)
        if older is not None and _parse(older)[1] > attempt:
            raise UnknownSession(f"{session_id}: attempt {attempt} was superseded by {older}")
        if older is not None and self.close(older):  # its attempt was given up and issued again
            self.superseded += 1
        if len(self._sessions) >= self.capacity:
            raise PoolFull(f"{len(self._sessions)} sessions open, capacity {self.capacity}")
        self._sessions[session_id] = self.factory(spec)
        self._used[session_id] = self.clock()
        self._attempts[key] = session_id
        self.opened += 1

    def call(self, session_id: str, method: str, args: Any) -> Any:
        session = self._sessions.get(session_id)
        if session is None:
            raise UnknownSession(session_id)
        self._used[session_id] = self.clock()
        self.calls += 1
        return session.call(method, args)

    def close(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        self._used.pop(session_id, None)
        if session is None:
            return False
        key = _parse(session_id)[0]
        if self._attempts.get(key) == session_id:
            del self._attempts[key]
        self.closed += 1
        try:
            session.close()
        except Exception:  # noqa: BLE001 - a session's own cleanup must not take the member down
            pass
        return True

    def sweep(self) -> list[str]:
        """Close sessions unused for ``idle_s`` (their task's record was lost with its peer)."""
        now = self.clock()
        idle = [sid for sid, used in self._used.items() if now - used > self.idle_s]
        for sid in idle:
            self.close(sid)
        self.dropped_idle += len(idle)
        return idle

    def close_all(self) -> None:
        for sid in list(self._sessions):
            self.close(sid)

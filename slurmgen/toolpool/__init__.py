"""Tool pools: processes that host one environment session per task.

A *session* is whatever a workflow's factory returns for a spec (a tau2 environment
initialised for one task, a sandboxed shell, ...): an object with
``call(method, args) -> JSON value`` and ``close()``. A pool member
(``python -m slurmgen.toolpool.server``) creates sessions with the factory named in
config (``toolpool.factory`` or the workflow's ``toolpool_factory``), serves them over a
CurveZMQ ROUTER (``SessionOpen`` / ``SessionCall`` / ``SessionClose`` in
``slurmgen.protocol``) and registers in the registry as kind ``"toolpool"`` with its
capacity.

Peers use ``ToolPools`` (``slurmgen.toolpool.client``): a role opens its task's session
on first use — one member is chosen, and the handle, recorded in the task message
(``Orchestrator.sessions``), keeps every later call on that member (sticky) whichever
peer runs the role. The task's origin closes its sessions when it writes the record
(or issues the task again). A member that dies fails the calls of its sessions with
``ToolPoolError``: the task starts again from its row (``toolpool.on_lost=restart``) or
is recorded failed (``on_lost=fail``). Nothing here imports a workflow.
"""

from typing import Any

from slurmgen.toolpool.session import Session, SessionHost, pool_factory, pool_size

__all__ = ["LocalPools", "Session", "SessionHost", "ToolPools", "pool_factory", "pool_size"]


def __getattr__(name: str) -> Any:
    """The clients load ZeroMQ: only when asked for (the driver plans pools without them)."""
    if name in ("LocalPools", "ToolPools"):
        from slurmgen.toolpool import client

        return getattr(client, name)
    raise AttributeError(name)

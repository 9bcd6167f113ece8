"""A simulator script for the stall test: nr's own script, except that a request whose
prompt carries HANG_MARK is never answered (``ScriptReply(hang=True)``)."""

from __future__ import annotations

import random

from slurmgen.agents.nr.script import respond as nr_respond
from slurmgen.sim.script import ScriptReply, ScriptRequest

HANG_MARK = "PLEASE-HANG-HERE"


def respond(req: ScriptRequest, rng: random.Random) -> ScriptReply | None:
    if any(HANG_MARK in (m.content or "") for m in req.messages):
        return ScriptReply(hang=True)
    return nr_respond(req, rng)

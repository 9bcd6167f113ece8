"""Section ``peers_tau2`` (opt-in): tau2-bench's own runner (``tau2.run.run_tasks``) next to slurmgen's
tau2 workflow on the same replicas, per domain, interleaved (``../peer_tau2.py`` runs and reads them);
the figures under ``peers.tau2``."""

from __future__ import annotations

import collections
import json
from typing import Any

import msgspec

from ..common import WORKFLOW_SCRIPTS, SimFleet, loadavg, log
from ..peer_tau2 import (
    MAX_STEPS,
    SCRIPT_FLEETS,
    TARGETS,
    Tau2Run,
    pin_fleet,
    pinning,
    run_slurmgen_tau2,
    run_tau2_runner,
    summarize,
    table_rows,
)
from ..section import Context, SectionResult


class Params(msgspec.Struct, kw_only=True):
    tau2_domains: list[str]  # domains run with the oracle script (the same gold-replay dialogues everywhere)
    tau2_respond_domains: list[str]  # domains also run with the respond script (the default mix)
    # simulator replicas (the runner: agent on the first, user on the last). 2 time-scaled replicas were the
    # ceiling of slurmgen's figure (508 requests in flight, ~430k tokens/s in every domain) while the runner's
    # best stays CPU-bound on its core (in flight < 4); both systems get the same fleet (the runner addresses
    # one replica per role, its only routing)
    tau2_replicas: int = 4
    tau2_scale: float = 20.0  # simulator time scale
    tau2_concurrency: list[int]  # the runner's max_concurrency (the first: its CLI's default, 3)
    tau2_nosave_concurrency: list[int]  # the runner also without its results file (run_tasks' own default)
    tau2_in_flight: int = 512  # slurmgen's run.max_in_flight
    tau2_peers: int = 1  # slurmgen's run.peers
    # s from the first token to the window: slurmgen's peer and tool-pool members each import tau2 (about
    # 5 s of CPU) while its first tasks already talk to the replicas: on one shared core a 3 s warm-up
    # measured that ramp (8 s window: 23 requests in flight of 512), so the quick window opens 10 s in
    tau2_warm: float = 10.0
    # a domain's own warm-up: telecom's dialogues are long (~9 LLM calls of ~6,900 tokens): its first wave
    # of 512 tasks finishes ~24 s after the first token; a window opening earlier measures that wave's ramp
    tau2_warm_by_domain: dict[str, float] = msgspec.field(default_factory=lambda: {"telecom": 25.0})
    tau2_window: float  # s measured
    tau2_rows: int  # rows of slurmgen's dataset (the domain's tasks repeated)
    tau2_repeats: int  # interleaved repeats of every system
    tau2_pin: bool = True  # replicas on one core, each system's process tree on the other

    def warm_of(self, domain: str) -> float:
        return self.tau2_warm_by_domain.get(domain, self.tau2_warm)


class Result(SectionResult, kw_only=True):
    tau2: dict[str, Any]  # results["peers"]["tau2"]

    def store(self, results: dict[str, Any]) -> None:
        results.setdefault("peers", {})["tau2"] = self.tau2


def setup(ctx: Context, p: Params, domain: str, cpus: list[int] | None) -> Tau2Run:
    return Tau2Run(out=ctx.out, domain=domain, cpus=cpus, warm=p.warm_of(domain), window=p.tau2_window,
                   curve_on=ctx.curve_on, spill=ctx.spill, in_flight=p.tau2_in_flight, peers=p.tau2_peers,
                   rows=p.tau2_rows)


def repeat(run: Tau2Run, p: Params, key: str, i: int, fleet: SimFleet, reps: dict[str, list[dict[str, Any]]]) -> None:
    """One repeat of every system, in turn (a drift of the machine's load hits every one)."""
    reps["slurmgen"].append(run_slurmgen_tau2(run, f"tau2-{key}-slurmgen-{i}", fleet))
    for c in p.tau2_concurrency:
        reps[f"tau2_runner_{c}"].append(run_tau2_runner(run, f"tau2-{key}-runner{c}-{i}", fleet, c))
    for c in p.tau2_nosave_concurrency:  # run_tasks' own default: no results file
        reps[f"tau2_runner_{c}_nosave"].append(run_tau2_runner(run, f"tau2-{key}-runner{c}-nosave-{i}", fleet, c,
                                                               save=False))


def domain_entry(ctx: Context, p: Params, out: Result, domain: str, script: str) -> None:
    """One domain with one script: every system's repeats on one fleet, summarized into ``out``."""
    key = domain if script == "oracle" else f"{domain}_{script}"
    pins, t2 = out.tau2["pinning"], out.tau2
    t2["load_avg"][f"{key}_start"] = loadavg()
    reps: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    run = setup(ctx, p, domain, pins["system"])
    with SimFleet(p.tau2_replicas, SCRIPT_FLEETS[script], time_scale=p.tau2_scale) as fleet:
        pin_fleet(fleet, pins["sims"])
        for i in range(p.tau2_repeats):
            repeat(run, p, key, i, fleet, reps)
            ctx.publish(out)
    t2["domains"][key] = summarize(reps, p.tau2_concurrency)
    t2["domains"][key].update(domain=domain, script=script, replicas=fleet.n, time_scale=fleet.time_scale)
    t2["load_avg"][f"{key}_end"] = loadavg()
    log(f"peers tau2 {key}: " + json.dumps({k: v for k, v in t2["domains"][key].items()
                                            if "ratio" in k or k.startswith(("rss", "pss"))}))


class PeersTau2:
    name = "peers_tau2"
    opt_in = True
    quick = Params(tau2_domains=["airline", "retail", "telecom"], tau2_respond_domains=[],
                   tau2_concurrency=[3, 16], tau2_nosave_concurrency=[16], tau2_window=20.0, tau2_rows=5000,
                   tau2_repeats=1)
    full = Params(tau2_domains=["mock", "airline", "retail", "telecom"], tau2_respond_domains=["mock"],
                  tau2_concurrency=[3, 16, 64], tau2_nosave_concurrency=[16, 64], tau2_window=30.0, tau2_rows=20000,
                  tau2_repeats=1)
    table = ((110, table_rows),)

    def run(self, ctx: Context, p: Params) -> Result:
        out = Result(tau2={"pinning": pinning(p.tau2_pin), "targets": TARGETS, "max_steps": MAX_STEPS,
                           "domains": {}, "load_avg": {},
                           "scripts": {k: WORKFLOW_SCRIPTS[SCRIPT_FLEETS[k]] for k in SCRIPT_FLEETS}})
        (ctx.out / "runs").mkdir(parents=True, exist_ok=True)
        for domain, script in ([(d, "oracle") for d in p.tau2_domains]
                               + [(d, "respond") for d in p.tau2_respond_domains]):
            domain_entry(ctx, p, out, domain, script)
        return out

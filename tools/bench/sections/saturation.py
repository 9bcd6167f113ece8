"""Section ``saturation``: slurmgen's tokens/s over the ideal direct client's, same replicas, same
concurrency, same request stream (nr, coral); on nr, in the same run, the baselines (central single
loop, batch barrier, thread pool); on coral, the batch barrier on multi-turn work (``../barrier.py``)."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from .. import barrier
from ..common import SimFleet, log
from ..harness import run_slurmgen, run_worker
from ..section import Context, Row, SectionResult
from .fmt import fmt
from .shared import CORAL_4, CORAL_4_ARGS, capacity_arg, record, slim


class Params(msgspec.Struct, kw_only=True):
    sat_workflows: list[str] = msgspec.field(default_factory=lambda: ["nr", "coral"])  # of nr, coral
    nr_replicas: int  # simulator replicas of the nr runs (coral: the shared ``replicas``)
    nr_scale: float  # simulator time scale of the nr runs (coral: the shared ``scale``)
    thread_sweep: list[int]  # threads of the thread-pool baseline (3: tau2's default; the best is reported)
    equal_concurrency: bool  # also slurmgen held to the batch barrier's 400 tasks (the barrier's cost alone)
    # also Coral with its default max_turns (20; about a fifth of the conversations run to it: the long
    # tail a batch waits for), slurmgen and the barrier on a fresh pair of runs ...
    barrier_default_turns: bool
    barrier_window_s: float  # ... each window at least this (a batch must end inside it for its tail to count)


class Entry(msgspec.Struct, kw_only=True):
    """One workflow's saturation: slurmgen's tokens/s over the ideal client's, means of the repeats."""

    ratio: float
    slurmgen_tokens_per_s: float
    ideal_tokens_per_s: float
    concurrency: int
    peers: int
    replicas: int
    time_scale: float
    recorded: dict[str, Any]  # the recording run's worker output
    overrides: dict[str, Any]
    repeats: dict[str, list[float]]
    runs: dict[str, dict[str, Any]]


class Result(SectionResult, kw_only=True):
    saturation: dict[str, Entry]
    baselines: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET  # nr's (``baselines.entries``)
    barrier: dict[str, dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET  # coral's

    def store(self, results: dict[str, Any]) -> None:
        """Workflows and barrier entries not run keep the values they had (``--merge``)."""
        results.setdefault("saturation", {}).update(msgspec.to_builtins(self.saturation))
        if self.baselines is not msgspec.UNSET:
            results["baselines"] = self.baselines
        if self.barrier is not msgspec.UNSET:
            results.setdefault("barrier", {}).update(self.barrier)


def interleaved(ctx: Context, workflow: str, fleet: SimFleet, chains: str, m: int, peers: int, args: list[str],
                dataset: str) -> dict[str, list[dict[str, Any]]]:
    """The ideal client's and slurmgen's runs, alternating (a drift of the machine's load hits both)."""
    s = ctx.shared
    reps: dict[str, list[dict[str, Any]]] = {"ideal": [], "slurmgen": []}
    for i in range(s.repeats):
        spec = dict(kind="ideal", workflow=workflow, urls=fleet.urls, concurrency=m, chains=chains)
        res, _ = run_worker(f"{workflow}-ideal-{i}", spec, fleet, warm=s.warm, window=s.window)
        reps["ideal"].append(res)
        res, _ = run_slurmgen(f"{workflow}-slurmgen-{i}", ctx.out, workflow, fleet, peers=peers, max_in_flight=m,
                              trials=1, warm=s.warm, window=s.window, curve_on=ctx.curve_on, spill=ctx.spill,
                              extra=[*args, capacity_arg(m)], dataset=dataset)
        reps["slurmgen"].append(res)
    return reps


def mean_runs(reps: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each system's last run, its tokens/s the mean of its repeats."""
    runs = {}
    for key, lst in reps.items():
        runs[key] = dict(lst[-1])
        runs[key]["tokens_per_s"] = sum(x["tokens_per_s"] for x in lst) / len(lst)
        runs[key]["tokens_per_s_repeats"] = [round(x["tokens_per_s"], 1) for x in lst]
    return runs


def one(ctx: Context, p: Params, workflow: str, out: Result) -> None:
    """One workflow's saturation runs, then its baselines (nr) or barrier (coral), into ``out``."""
    s = ctx.shared
    nr = workflow == "nr"
    overrides, args = (None, []) if nr else (CORAL_4, CORAL_4_ARGS)
    replicas, scale = (p.nr_replicas, p.nr_scale) if nr else (s.replicas, s.scale)
    chains, recorded = record(ctx, workflow, overrides)
    m, peers, dataset = s.per_replica * replicas, max(s.peers, replicas // 2), ctx.dataset(workflow)
    with SimFleet(replicas, workflow, time_scale=scale) as fleet:
        reps = interleaved(ctx, workflow, fleet, chains, m, peers, args, dataset)
        runs = mean_runs(reps)
        su = barrier.Setup(fleet=fleet, m=m, peers=peers, dataset=dataset, equal_concurrency=p.equal_concurrency)
        if nr:
            out.baselines = baselines(ctx, p, su, workflow, runs)
        else:  # multi-turn: the batch barrier waits for each batch's longest conversation
            out.barrier = barrier.multi_turn(ctx, su, workflow, runs["slurmgen"], overrides, args,
                                             default_turns=p.barrier_default_turns, window_s=p.barrier_window_s)
    sat = runs["slurmgen"]["tokens_per_s"] / max(runs["ideal"]["tokens_per_s"], 1e-9)
    out.saturation[workflow] = Entry(
        ratio=round(sat, 4), slurmgen_tokens_per_s=round(runs["slurmgen"]["tokens_per_s"], 1),
        ideal_tokens_per_s=round(runs["ideal"]["tokens_per_s"], 1), concurrency=m, peers=peers, replicas=replicas,
        time_scale=scale, recorded=recorded, overrides=overrides or {},
        repeats={k: [round(x["tokens_per_s"], 1) for x in v] for k, v in reps.items()},
        runs={k: slim(v) for k, v in runs.items()})
    for v in runs.values():
        ctx.peak(v["server_max_in_flight"])
    log(f"saturation {workflow}: {sat:.3f}")


def baseline_runs(ctx: Context, p: Params, su: barrier.Setup, workflow: str, runs: dict[str, Any]) -> dict[int, Any]:
    """The baselines' runs into ``runs`` (and slurmgen at 400 tasks); the thread sweep's, by threads."""
    s = ctx.shared
    common = dict(workflow=workflow, urls=su.fleet.urls, dataset=su.dataset)
    if p.equal_concurrency:  # slurmgen held to the batch baseline's 400 tasks: the barrier's cost alone
        runs["slurmgen_400"], _ = run_slurmgen(f"{workflow}-slurmgen-400", ctx.out, workflow, su.fleet,
                                               peers=su.peers, max_in_flight=400, trials=1, warm=s.warm,
                                               window=s.window, curve_on=ctx.curve_on, spill=ctx.spill,
                                               dataset=su.dataset)
    runs["central"], _ = run_worker("central", dict(kind="central", concurrency=su.m, **common), su.fleet,
                                    warm=s.warm, window=s.window)
    runs["batch"], _ = run_worker("batch", dict(kind="batch", concurrency=4, batch=100, **common), su.fleet,
                                  warm=s.warm, window=s.window)
    sweep = {}
    for c in p.thread_sweep:
        sweep[c], _ = run_worker(f"threads-{c}", dict(kind="threads", concurrency=c, **common), su.fleet,
                                 warm=s.warm, window=s.window)
    return sweep


def baselines(ctx: Context, p: Params, su: barrier.Setup, workflow: str, runs: dict[str, Any]) -> dict[str, Any]:
    sweep = baseline_runs(ctx, p, su, workflow, runs)
    best_c = max(sweep, key=lambda c: sweep[c]["tokens_per_s"])
    runs["threads_default"], runs["threads_best"] = sweep[3], sweep[best_c]
    ours = runs["slurmgen"]["tokens_per_s"]
    out = {
        "workflow": workflow, "slurmgen_tokens_per_s": round(ours, 1), "slurmgen_concurrency": su.m,
        "replicas": su.fleet.n, "time_scale": su.fleet.time_scale,
        "central_single_loop": ratio_entry(runs, "central", concurrency=su.m),
        "batch_barrier": ratio_entry(runs, "batch", batch=100, concurrency_batches=4),
        "thread_pool_default": ratio_entry(runs, "threads_default", threads=3),
        "thread_pool_best": ratio_entry(runs, "threads_best", threads=best_c),
        "thread_pool_sweep": {str(c): round(v["tokens_per_s"], 1) for c, v in sweep.items()},
        "sim_in_flight_mean": {k: round(runs[k]["sim_in_flight_mean"], 1) for k in
                               ("slurmgen", "central", "batch", "threads_default", "threads_best")},
    }
    if "slurmgen_400" in runs:
        out["batch_barrier_equal_concurrency"] = equal_concurrency(runs["slurmgen_400"], runs["batch"])
    ratios = {k: v["ratio"] for k, v in out.items() if isinstance(v, dict) and "ratio" in v}
    log(f"baselines: {json.dumps(ratios)}")
    return out


def ratio_entry(runs: dict[str, Any], key: str, **extra: Any) -> dict[str, Any]:
    """A baseline's tokens/s and slurmgen's over it (and the same for decode tokens alone)."""
    ours, ours_gen = runs["slurmgen"]["tokens_per_s"], runs["slurmgen"].get("generation_tokens_per_s")
    tps = runs[key]["tokens_per_s"]
    out = {"tokens_per_s": round(tps, 1), "ratio": round(ours / max(tps, 1e-9), 3), **extra}
    gen = runs[key].get("generation_tokens_per_s")
    if gen and ours_gen:  # decode alone: what batching helps, and what a barrier starves
        out["generation_tokens_per_s"] = round(gen, 1)
        out["generation_ratio"] = round(ours_gen / gen, 3)
    return out


def equal_concurrency(ours: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    out = {"slurmgen_400_tokens_per_s": round(ours["tokens_per_s"], 1),
           "ratio": round(ours["tokens_per_s"] / max(batch["tokens_per_s"], 1e-9), 3)}
    gen400, gen_b = ours.get("generation_tokens_per_s"), batch.get("generation_tokens_per_s")
    if gen400 and gen_b:
        out["generation_ratio"] = round(gen400 / gen_b, 3)
    return out


def rows(r: dict[str, Any]) -> list[Row]:
    return [(f"saturation {wf} (slurmgen / ideal)", fmt(s["ratio"], ".3f"), ">= 0.95")
            for wf, s in r.get("saturation", {}).items()]


BASELINE_ROWS = (("central_single_loop", "÷ central single loop", ""),
                 ("batch_barrier", "÷ batch barrier (100 x 4)", ">= 2"),
                 ("thread_pool_default", "÷ thread pool (3 threads)", ">= 10"),
                 ("thread_pool_best", "÷ thread pool (best)", ""))


def baseline_rows(r: dict[str, Any]) -> list[Row]:
    """The baselines, with the scaling section's batch barrier on its most replicas."""
    base = r.get("baselines", {})
    out = []
    for key, label, target in BASELINE_ROWS:
        if key in base:
            e = base[key]
            extra = f" [{e['threads']} threads]" if "threads" in e and key == "thread_pool_best" else ""
            out.append((f"slurmgen {label}{extra}", f"{fmt(e['ratio'], '.2f')}x ({fmt(e['tokens_per_s'], '.0f')} "
                        "tok/s)", target))
    for key, e in sorted(base.items()):
        if key.startswith("batch_barrier_") and key.endswith("_replicas"):
            out.append((f"slurmgen ÷ batch barrier on {e['replicas']} replicas",
                        f"{fmt(e['ratio'], '.2f')}x ({fmt(e['tokens_per_s'], '.0f')} tok/s)", ">= 2"))
    if "batch_barrier_equal_concurrency" in base:
        e = base["batch_barrier_equal_concurrency"]
        out.append(("slurmgen at 400 tasks ÷ batch barrier", f"{fmt(e['ratio'], '.2f')}x", ""))
    return out


class Saturation:
    name = "saturation"
    opt_in = False
    quick = Params(nr_replicas=2, nr_scale=20.0, thread_sweep=[3], equal_concurrency=False,
                   barrier_default_turns=False, barrier_window_s=30.0)
    full = Params(nr_replicas=4, nr_scale=10.0, thread_sweep=[3, 16, 64, 256], equal_concurrency=True,
                  barrier_default_turns=True, barrier_window_s=60.0)
    table = ((10, rows), (70, baseline_rows), (90, barrier.table_rows))

    def run(self, ctx: Context, p: Params) -> Result:
        out = Result(saturation={})
        for workflow in ("nr", "coral"):
            if workflow in p.sat_workflows:
                one(ctx, p, workflow, out)
                ctx.publish(out)  # nr's figures stay if coral's runs fail
        return out

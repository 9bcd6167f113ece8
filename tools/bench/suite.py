"""One run of the benchmark: the chosen sections in order, each writing its part of DIR/results.json
as soon as it is done; then the plots and the table."""

from __future__ import annotations

import json
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import loadavg, log, machine
from .params import SHARED_FULL, SHARED_QUICK, ParamError, Params
from .plots import plot_all
from .section import Context
from .sections import BY_NAME, SECTIONS
from .table import table

TARGETS = {
    "saturation": 0.95, "pool_saturation": 0.95, "cpu_us_per_hop": 100.0, "cpu_us_per_llm_call": 300.0,
    "cpu_ms_per_llm_call_all": 1.2,
    "server_max_in_flight": 5000, "max_in_flight": 50000, "batch_barrier_ratio": 2.0, "thread_pool_ratio": 10.0,
}
SPILL = {"off": False, "on": True, "default": None}  # --spill -> spill.enabled in the runs


@dataclass
class Options:
    """The command line of a run (``cli.py``)."""

    out: Path
    quick: bool = False
    only: str = ""  # comma-separated sections ("": every section but the opt-in ones)
    peers: bool = False  # also the opt-in sections
    curve: bool = True
    spill: str = "default"
    merge: bool = False
    keep_runs: bool = False
    sets: list[str] = field(default_factory=list)  # KEY=VALUE


def chosen(only: str, peers: bool) -> list[str]:
    """The sections to run, in run order; a ParamError names an unknown one."""
    names = [s for s in only.split(",") if s] or [s.name for s in SECTIONS if not s.opt_in]
    names += [s.name for s in SECTIONS if peers and s.opt_in and s.name.startswith("peers_") and s.name not in names]
    unknown = set(names) - set(BY_NAME)
    if unknown:
        raise ParamError(f"unknown sections {sorted(unknown)}; valid: {', '.join(BY_NAME)}")
    return [s.name for s in SECTIONS if s.name in names]


def params(quick: bool, sets: list[str]) -> Params:
    """The mode's parameters, with each ``--set`` applied (a ParamError names a bad one)."""
    p = Params(shared=SHARED_QUICK if quick else SHARED_FULL,
               sections={s.name: s.quick if quick else s.full for s in SECTIONS})
    for item in sets:
        p.set(item)
    return p


def skeleton(opts: Options, p: Params) -> dict[str, Any]:
    """results.json before any section: every headline key, unset."""
    return {
        "mode": "quick" if opts.quick else "full", "targets": TARGETS, "machine": machine(),
        "load_avg": {"start": loadavg()}, "curve": opts.curve, "params": p.flat(), "timeline": {},
        "saturation": {}, "pools": {}, "baselines": {}, "scaling": [], "spill": {"status": "pending"},
        "cpu_us_per_hop": None, "cpu_us_per_llm_call": None, "cpu_ms_per_llm_call_all": None,
        "server_max_in_flight": 0, "max_in_flight": None, "bytes_per_inflight_task": None,
        "section_errors": {}, "section_s": {}, "spill_in_runs": opts.spill,
    }


def merged(results: dict[str, Any], previous: Path, names: list[str]) -> dict[str, Any]:
    """--merge: the previous file's figures, this run's parameters and section errors (the file's are
    dropped). The file's machine stays (this run's is ``merged_machine``)."""
    old = json.loads(previous.read_text())
    fresh = {k: v for k, v in results.items() if k in ("params", "mode", "targets")}
    fresh["merged_machine"] = results["machine"]
    out = {**results, **{k: v for k, v in old.items() if k != "section_errors"}, **fresh}
    out["merged_sections"] = names
    return out


def run_section(ctx: Context, name: str) -> None:
    """One section into ctx.results; its failure is recorded there (the other sections still run)."""
    section = BY_NAME[name]
    t0 = time.monotonic()
    ctx.results["load_avg"][f"{name}_start"] = loadavg()
    try:
        section.run(ctx, ctx.params.of(name)).store(ctx.results)
    except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
        log(f"section {name} failed: {exc!r}")
        ctx.results["section_errors"][name] = "".join(traceback.format_exception(exc))[-3000:]
    ctx.results["section_s"][name] = round(time.monotonic() - t0, 1)
    ctx.save()


def run(opts: Options, names: list[str], p: Params) -> int:
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    results = skeleton(opts, p)
    if opts.merge and (out / "results.json").exists():
        results = merged(results, out / "results.json", names)
    ctx = Context(out=out, curve_on=opts.curve, spill=SPILL[opts.spill], params=p, results=results)
    t_start = time.monotonic()
    log(f"mode={results['mode']} out={out} load={loadavg()}")
    for name in names:
        run_section(ctx, name)
    results["load_avg"]["end"] = loadavg()
    results["total_s"] = round(time.monotonic() - t_start, 1)
    results["plots"] = plot_all(results, out)
    ctx.save()
    if not opts.keep_runs:
        shutil.rmtree(out / "runs", ignore_errors=True)
    print(table(results))
    print(f"\nresults: {out / 'results.json'}; {results['total_s']} s; load average {loadavg()}")
    return 0

"""slurmgen's throughput benchmark, on its own simulator.

    python tools/bench.py [--quick] [--out DIR] [--only SECTION,...] [--peers] [--set KEY=VALUE ...]
    python tools/bench.py readme [RESULTS_JSON] [--readme README.md] [--check]

Sections (each writes its part of DIR/results.json as soon as it is done; sections/*.py):

- ``micro``: CPU µs per hop (4 KiB task message, two processes, real sockets, codec,
  router) and per LLM call in the client (real ``LLMClient``, zero-latency replica);
- ``cpu``: CPU of all slurmgen processes (driver, registry, peers — not the simulator)
  per LLM call, on a 4-turn Coral run against zero-latency replicas;
- ``saturation``: slurmgen's tokens/s over the ideal direct client's, same replicas,
  same concurrency, same request stream (nr, coral); on nr, in the same run, the
  baselines (central single loop, batch barrier, thread pool);
- ``pools``: two LLM pools in one run (coral 4-turn, the teacher on a 70B fleet, every other
  role on an 8B fleet): each pool's tokens/s, slurmgen's over the ideal client's, and its
  mean request latency at the replicas;
- ``scale``: a ramp of concurrent tasks in one fleet (400 -> 12,400 -> 25,000 -> 50,000; nr and 4-turn
  Coral): in flight at the peers and at the simulator, RSS per in-flight task, CPU per LLM call, open
  files per process, and the first limit met;
- ``scaling``: tokens/s as agent peers and replicas grow 1 -> 2 -> 4 -> 8;
- ``spill``: bytes on the wire with and without spill;
- ``kv`` (only with ``--only kv``): routing and scheduling policies against the servers' KV cache (coral with many turns,
  tau2 mock with many concurrent tasks; tight and ample KV): finished tasks/s, tokens/s, prefix
  hit rate, preemptions, task latency, ratio over least-outstanding FCFS (``kv.py``);
- ``peers_matrix`` (only with ``--only`` or ``--peers``): Matrix itself (its own venv, its Coral flow, a
  local Ray head) and slurmgen on the same replicas, same concurrency (``peer_matrix.py``);
- ``peers_tau2`` (only with ``--only`` or ``--peers``): tau2-bench's own runner
  (``tau2.run.run_tasks``) next to slurmgen's tau2 workflow on the same replicas (peer_tau2.py).

Writes DIR/results.json and DIR/*.png (when matplotlib is installed), prints a table.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from . import readme
from .params import ParamError
from .sections import BY_NAME
from .suite import Options, chosen, params, run


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python tools/bench.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the CI smoke set (a few minutes)")
    ap.add_argument("--out", default="benchmarks/latest", help="output directory (results.json, *.png, runs/)")
    ap.add_argument("--only", default="", help=f"comma-separated sections of {','.join(BY_NAME)}")
    ap.add_argument("--no-curve", dest="curve", action="store_false",
                    help="CurveZMQ off in the runs (default: on, as run.curve's default; the cpu section "
                         "measures both either way)")
    ap.add_argument("--spill", choices=("off", "on", "default"), default="default",
                    help="spill.enabled in every run but the spill section's (default: the run default, on)")
    ap.add_argument("--merge", action="store_true",
                    help="start from DIR/results.json and replace only the sections run (e.g. with --only); "
                         "the file's machine stays, this run's is merged_machine")
    ap.add_argument("--peers", action="store_true", help="also the peer sections (peers_matrix, peers_tau2)")
    ap.add_argument("--keep-runs", action="store_true", help="keep DIR/runs (run directories, logs)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override a parameter of the mode (e.g. --set window=60; lists as JSON), converted "
                         "to the parameter's type")
    sub = ap.add_subparsers(dest="command", metavar="{readme}")  # the others are the benchmark's own processes
    readme.add_parser(sub)
    internal(sub)
    return ap


def internal(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The processes the benchmark starts itself (not listed in --help)."""
    for name in ("worker", "tau2-runner"):
        p = sub.add_parser(name)
        p.add_argument("--spec", required=True, help="the runner's spec, JSON")
        p.set_defaults(func=_worker if name == "worker" else _tau2_runner)
    hop = sub.add_parser("hop-peer")
    hop.add_argument("--name", required=True)
    hop.add_argument("--other", required=True)
    hop.add_argument("--start-at", type=float, required=True)
    hop.add_argument("--warm", type=float, default=1.0)
    hop.add_argument("--duration", type=float, default=3.0)
    hop.add_argument("--window", type=int, default=64)
    hop.add_argument("--keys-dir", default="")
    hop.add_argument("--batched", action="store_true")
    hop.set_defaults(func=_hop_peer)
    client = sub.add_parser("client-bench")
    client.add_argument("--url", required=True)
    client.add_argument("--window", type=int, default=64)
    client.add_argument("--warm", type=float, default=1.0)
    client.add_argument("--duration", type=float, default=4.0)
    client.set_defaults(func=_client_bench)


def _worker(args: argparse.Namespace) -> int:
    from .runners import main as worker_main

    return worker_main(args.spec)


def _tau2_runner(args: argparse.Namespace) -> int:
    from .tau2_runner import main as tau2_runner_main

    return tau2_runner_main(args.spec)


def _hop_peer(args: argparse.Namespace) -> int:
    from .micro import hop_peer_main

    return hop_peer_main(args)


def _client_bench(args: argparse.Namespace) -> int:
    from .micro import client_main

    return client_main(args)


def main(argv: list[str]) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.command:
        return int(args.func(args))
    opts = Options(out=Path(args.out).resolve(), quick=args.quick, only=args.only, peers=args.peers,
                   curve=args.curve, spill=args.spill, merge=args.merge, keep_runs=args.keep_runs, sets=args.sets)
    try:  # bad input: exit 2 before anything starts
        names, p = chosen(opts.only, opts.peers), params(opts.quick, opts.sets)
    except ParamError as exc:
        ap.error(str(exc))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # leave through the finally/with blocks
    return run(opts, names, p)

"""The README's benchmark block, regenerated from a results.json (never edited by hand).

    python tools/bench.py readme [RESULTS_JSON] [--readme README.md] [--check]

Writes, between the README's ``bench:begin`` and ``bench:end`` markers: the machine, load,
commit and date of the run; every figure of results.json with its target and whether
it is met; the plots of every system (tokens/s against concurrency, CPU per LLM call),
redrawn next to results.json. ``--check`` exits 1 when the README's block is not the one
the file gives (so a hand edit, or a results.json checked in without its block, shows).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

from .common import dump_json
from .plots import plot_all
from .table import table_rows

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
DEFAULT = "benchmarks/full/results.json"


def block(r: dict[str, Any], results: Path, readme_dir: Path) -> str:
    rel = Path(os.path.relpath(results.parent, readme_dir))
    lines = [BEGIN, f"<!-- written by `python tools/bench.py readme {os.path.relpath(results, readme_dir)}`; "
                    "change the tool or re-run the benchmark, not this block -->", "", header(r, rel / results.name), "",
             "| metric | value | target | met |", "|---|---|---|---|"]
    for metric, value, target in table_rows(r):
        lines.append(f"| {cell(metric)} | {cell(value)} | {cell(target)} | {met(value, target)} |")
    errors = r.get("section_errors") or {}
    if errors:
        lines += ["", "Sections that failed in this run (their traceback is in results.json, `section_errors`): "
                  + ", ".join(f"`{name}`" for name in errors) + "."]
    files = (r.get("plots") or {}).get("files") or []
    lines.append("")
    for name, alt in (("systems_tokens.png", "tokens/s against concurrency, every system, per workload"),
                      ("systems_cpu.png", "CPU ms per LLM call, every system")):
        if name in files:
            lines.append(f"![{alt}]({(rel / name).as_posix()})")
    lines.append(END)
    return "\n".join(lines)


def header(r: dict[str, Any], where: Path) -> str:
    m = r.get("machine") or {}
    loads = [v[0] for v in (r.get("load_avg") or {}).values() if isinstance(v, list) and v]
    commit = m.get("slurmgen_commit", "")[:10] or "unknown"
    sections = ", ".join(f"{k} {v:.0f} s" for k, v in (r.get("section_s") or {}).items())
    text = (f"From [`{where.as_posix()}`]({where.as_posix()}): {r.get('mode', '?')} mode, "
            f"{m.get('date', 'date not recorded')}, commit `{commit}`"
            f"{' with uncommitted changes' if m.get('worktree_dirty') else ''}; {m.get('cpu_model', '?')}, "
            f"{m.get('cores', '?')} cores, {m.get('mem_gb', '?')} GiB, Python {m.get('python', '?')}; "
            f"run defaults: CurveZMQ {'on' if r.get('curve') else 'off'}, spill "
            f"{ {'default': 'on (default)', 'on': 'on', 'off': 'off'}.get(r.get('spill_in_runs', 'default'), '?') }. "
            f"1-minute load average {min(loads, default=0):.1f}–{max(loads, default=0):.1f} over the run "
            f"(per section in `load_avg`). Sections: {sections}.")
    if r.get("merged_sections"):
        text += (f" Sections {', '.join(r['merged_sections'])} were re-run into this file "
                 f"(`merged_machine` has that run's machine and commit).")
    return text


def cell(text: str) -> str:
    return text.replace("|", "\\|").strip()


def met(value: str, target: str) -> str:
    """"yes" / "**no**" when both read as numbers; blank when there is no target."""
    t = re.fullmatch(r"\s*(>=|<=)\s*([\d.]+)\s*", target or "")
    v = re.match(r"\s*([\d.]+)", value or "")
    if not t or not v:
        return ""
    ok = float(v.group(1)) >= float(t.group(2)) if t.group(1) == ">=" else float(v.group(1)) <= float(t.group(2))
    return "yes" if ok else "**no**"


def replace(readme: str, new: str) -> str:
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"the README has no {BEGIN} ... {END} block: add the two markers where the table goes")
    return readme[:start] + new + readme[end + len(END):]


def add_parser(sub: Any) -> None:
    """The ``readme`` subcommand of ``python tools/bench.py``."""
    ap = sub.add_parser("readme", help="the README's benchmark block, from a results.json", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="?", default=DEFAULT)
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README's block is not this file's")
    ap.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results, readme = Path(args.results).resolve(), Path(args.readme).resolve()
    r = json.loads(results.read_text())
    if not args.check:
        r["plots"] = plot_all(r, results.parent)
        dump_json(results, r)
    text = readme.read_text()
    new = replace(text, block(r, results, readme.parent))
    if args.check:
        if new != text:
            print(f"{readme}: the benchmark block is not the one {results} gives: run python tools/bench.py readme "
                  f"{args.results}")
            return 1
        return 0
    readme.write_text(new)
    print(f"{readme}: benchmark block from {results} ({len(new.splitlines()) - len(text.splitlines()):+d} lines)")
    return 0

"""The benchmark's sections behind their interface: each declares its knobs in both modes, its rows in
their slots, and its result writes results.json's keys in the shape the checked-in files have."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))

from bench import table
from bench.sections import BY_NAME, SECTIONS
from bench.sections.scaling import Point
from bench.sections.scaling import Result as ScalingResult
from bench.sections.spill import Pending
from bench.sections.spill import Result as SpillResult


def test_each_section_has_both_modes_and_its_own_slots() -> None:
    slots = [slot for s in SECTIONS for slot, _ in s.table] + [table.SERVER_SLOT]
    assert len(slots) == len(set(slots)), sorted(slots)
    for s in SECTIONS:
        assert type(s.quick) is type(s.full) and isinstance(s.quick, msgspec.Struct), s.name
    assert [s.name for s in SECTIONS if s.opt_in] == ["kv", "peers_matrix", "peers_tau2"]


def test_the_table_keeps_the_checked_in_order() -> None:
    r = json.loads((REPO / "benchmarks" / "full" / "results.json").read_text())
    metrics = [m for m, _, _ in table.table_rows(r)]
    first = [next(i for i, m in enumerate(metrics) if m.startswith(p)) for p in
             ("saturation nr", "saturation, pool", "CPU per hop", "CPU per LLM call, all", "requests in flight",
              "concurrent tasks", "slurmgen ÷ central", "scaling k=1", "slurmgen ÷ batch barrier on coral",
              "Matrix ÷ slurmgen", "tau2 ", "spill:")]
    assert first == sorted(first)


def test_a_result_writes_its_keys_as_the_files_have_them() -> None:
    r: dict = {"baselines": {"workflow": "nr"}, "spill": {"status": "pending"}}
    SpillResult(spill=Pending()).store(r)
    assert r["spill"] == {"status": "pending", "why": "the peers count no bytes on the wire (no bytes_*_sent "
                                                      "counter in stats-peer-*.json)"}
    point = Point(peers=1, replicas=1, max_in_flight=256, time_scale=5.0, tokens_per_s=10.0, efficiency=1.0,
                  engine_busy_frac=None, cores_busy=0.5, sim_in_flight_mean=3.0, cpu_limited=False)
    ScalingResult(scaling=[point], barrier={"replicas": 8, "ratio": 2.5}).store(r)
    assert r["scaling"] == [msgspec.to_builtins(point)] and list(r["scaling"][0])[:2] == ["peers", "replicas"]
    assert r["baselines"] == {"workflow": "nr", "batch_barrier_8_replicas": {"replicas": 8, "ratio": 2.5}}
    full = json.loads((REPO / "benchmarks" / "full" / "results.json").read_text())
    assert set(r["scaling"][0]) == set(full["scaling"][0])  # the same keys as the full run's points


def test_every_section_is_found_by_name() -> None:
    assert list(BY_NAME) == ["micro", "cpu", "saturation", "pools", "scale", "scaling", "spill", "kv",
                             "peers_matrix", "peers_tau2"]


def test_merge_keeps_the_files_figures_and_takes_this_runs_params(tmp_path: Path) -> None:
    """``--merge --only micro``: the file's other sections stay; mode, params and targets are this run's."""
    from bench.suite import Options, merged, params, skeleton

    previous = tmp_path / "results.json"
    old = json.loads((REPO / "benchmarks" / "full" / "results.json").read_text())
    previous.write_text(json.dumps(old))
    opts = Options(out=tmp_path, quick=True, only="micro", merge=True)
    fresh = skeleton(opts, params(True, ["window=7"]))
    got = merged(fresh, previous, ["micro"])
    assert got["saturation"] == old["saturation"] and got["machine"] == old["machine"]
    assert got["mode"] == "quick" and got["params"]["window"] == 7.0
    assert got["merged_machine"] == fresh["machine"] and got["merged_sections"] == ["micro"]
    assert got["section_errors"] == {}
    assert list(got)[:len(fresh)] == list(fresh)  # the skeleton's keys first, in its order

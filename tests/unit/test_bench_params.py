"""The benchmark's parameters from the user's side: ``python tools/bench.py --set KEY=VALUE``.

Each knob is declared once (a typed field of the shared knobs or of one section's Params);
``--set`` converts the value to the knob's type and refuses an unknown key or a bad value
with exit 2 before anything starts (no output directory made)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))

from bench.params import ParamError
from bench.sections import SECTIONS
from bench.suite import chosen, params


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "tools/bench.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_set_converts_each_value_to_its_knobs_type() -> None:
    p = params(quick=True, sets=["window=60", "hop_s=2", 'sat_workflows=["coral"]', "tau2_pin=false",
                                 'pool_replicas={"teacher": 2, "default": 1}', "scaling_ks=[1,2,4]"])
    assert p.shared.window == 60.0 and isinstance(p.shared.window, float)
    assert p.of("micro").hop_s == 2.0 and isinstance(p.of("micro").hop_s, float)
    assert p.of("saturation").sat_workflows == ["coral"]
    assert p.of("peers_tau2").tau2_pin is False
    assert p.of("pools").pool_replicas == {"teacher": 2, "default": 1}
    flat = p.flat()
    assert flat["window"] == 60.0 and flat["scaling_ks"] == [1, 2, 4]  # results.json's params
    assert params(quick=True, sets=[]).shared.window == 6.0  # the mode's own values are untouched


def test_the_modes_differ_where_declared() -> None:
    quick, full = params(quick=True, sets=[]), params(quick=False, sets=[])
    assert (quick.shared.window, full.shared.window) == (6.0, 30.0)
    assert quick.of("scale").scale_ramp_s == full.of("scale").scale_ramp_s == 0.0012  # one default, both modes


@pytest.mark.parametrize(("item", "words"), [
    ("nope=1", "--set nope: unknown parameter; known: "),
    ("window=abc", "--set window=abc: Expected `float`, got `str`"),
    ('thread_sweep=[3,"a"]', "at `$[1]` (the knob is list[int])"),
    ("window", "--set window: expected KEY=VALUE"),
])
def test_a_bad_set_is_refused_with_its_key(item: str, words: str) -> None:
    with pytest.raises(ParamError) as err:
        params(quick=True, sets=[item])
    assert words in str(err.value)


def test_the_command_line_exits_2_before_anything_starts(tmp_path: Path) -> None:
    out = tmp_path / "never"
    proc = bench("--quick", "--only", "micro", "--out", str(out), "--set", "nope=1")
    assert proc.returncode == 2
    assert "--set nope: unknown parameter; known: " in proc.stderr and "window" in proc.stderr
    proc = bench("--quick", "--only", "micro,nope", "--out", str(out))
    assert proc.returncode == 2 and "unknown sections ['nope']" in proc.stderr
    assert not out.exists()


def test_each_knob_is_declared_once() -> None:
    p = params(quick=True, sets=[])
    names = [n for group in p.groups().values() for n in group.__struct_fields__]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_every_knob_of_the_checked_in_runs_is_still_a_knob() -> None:
    """A results.json's ``params`` read back by name (``--set`` takes the same names)."""
    got = set(params(quick=True, sets=[]).flat())
    ran = set(json.loads((REPO / "benchmarks" / "quick-tau2" / "results.json").read_text())["params"])
    assert ran <= got, sorted(ran - got)


def test_sections_run_in_order_and_the_peer_sections_only_when_asked() -> None:
    every = [s.name for s in SECTIONS]
    assert chosen("", peers=False) == [n for n in every if not n.startswith("peers_") and n != "kv"]
    assert chosen("", peers=True) == [n for n in every if n != "kv"]  # kv: only with --only kv (~8 min quick)
    assert chosen("kv", peers=False) == ["kv"]
    assert chosen("spill,micro", peers=False) == ["micro", "spill"]  # run order, not the order given
    assert chosen("peers_tau2", peers=False) == ["peers_tau2"]

"""``python tools/bench.py --quick --only peers_matrix`` runs Matrix itself and slurmgen end to end.

Skipped unless Matrix's venv is built (``bash tools/matrix_env.sh``; ~830 MB). Checks that
both systems' figures are numbers and that each system ran on its own CPU; asserts no
timing and no target (the machine is shared; the numbers are the benchmark's to report).
"""

import json
import math
import subprocess
import sys
from numbers import Number
from pathlib import Path

import pytest

from tests.conftest import REPO
from tools.bench.peer_matrix import venv_dir

FIGURES = ("tokens_per_s", "requests_per_s", "cpu_ms_per_llm_call", "server_max_in_flight", "peak_rss_mb",
           "tasks_finished")


def is_number(v: object) -> bool:
    return isinstance(v, Number) and not isinstance(v, bool) and math.isfinite(v)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not (venv_dir() / "bin" / "python").exists(), reason="Matrix's venv: bash tools/matrix_env.sh")
def test_matrix_and_slurmgen_on_the_same_replicas(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "bench.py"), "--quick", "--only", "peers_matrix",
                           "--out", str(out), "--set", "matrix_warm=20", "--set", "matrix_window=20"],
                          cwd=REPO, capture_output=True, text=True, timeout=1140)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    results = json.loads((out / "results.json").read_text())
    assert results["section_errors"] == {}, results["section_errors"]
    peers = results["peers"]["matrix"]
    for system in ("matrix", "slurmgen"):
        for key in FIGURES:
            assert is_number(peers[system][key]), (system, key, peers[system][key])
        assert peers[system]["requests"] > 0, system  # it reached the replicas in its window
    assert is_number(peers["ratios"]["cpu_per_call_matrix_over_slurmgen"])
    system_cpus = set(peers["pinning"]["system_cpus"])
    assert set(peers["slurmgen"]["affinity"]["peer"]) <= system_cpus
    assert all(set(v) <= system_cpus for k, v in peers["matrix"]["affinity"].items() if k.startswith("actor:"))

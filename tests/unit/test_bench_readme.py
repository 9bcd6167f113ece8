"""The README's benchmark block is the one the checked-in results.json gives (written by
``python tools/bench.py readme``, never by hand)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from bench import readme  # noqa: E402


def test_the_readme_block_is_the_checked_in_results() -> None:
    out = subprocess.run([sys.executable, "tools/bench.py", "readme", "--check"], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_hand_edit_of_the_block_is_found(tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text()
    edited = tmp_path / "README.md"
    edited.write_text(text.replace("| saturation nr", "| saturation  nr", 1))
    assert text != edited.read_text()
    out = subprocess.run([sys.executable, "tools/bench.py", "readme", "--check", "--readme", str(edited)], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 1 and "is not the one" in out.stdout


@pytest.mark.parametrize(("value", "target", "want"), [
    ("0.983", ">= 0.95", "yes"), ("0.915 (76073 / 83165 tok/s)", ">= 0.95", "**no**"),
    ("43.4", "<= 100", "yes"), ("1.53x (231740 tok/s)", ">= 2", "**no**"), ("n/a", ">= 2", ""),
    ("46554, 1.00", "near-linear", ""), ("29.6", "", "")])
def test_met_reads_the_value_against_its_target(value: str, target: str, want: str) -> None:
    assert readme.met(value, target) == want


def test_a_readme_without_markers_is_refused() -> None:
    with pytest.raises(SystemExit, match="bench:begin"):
        readme.replace("# no block here\n", "x")


def test_readme_rewrites_the_block_byte_for_byte_from_the_checked_in_results(tmp_path: Path) -> None:
    """``python tools/bench.py readme`` (not --check) on a copy: the plots redrawn, the block written, the
    README the same bytes as the checked-in one."""
    pytest.importorskip("matplotlib")  # without it the block would lose its plots (and say so)
    results = tmp_path / "benchmarks" / "full" / "results.json"
    results.parent.mkdir(parents=True)
    results.write_bytes((REPO / "benchmarks" / "full" / "results.json").read_bytes())
    copy = tmp_path / "README.md"
    copy.write_bytes((REPO / "README.md").read_bytes())
    out = subprocess.run([sys.executable, "tools/bench.py", "readme", str(results), "--readme", str(copy)], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(+0 lines)" in out.stdout
    assert copy.read_bytes() == (REPO / "README.md").read_bytes()
    assert (results.parent / "systems_tokens.png").exists() and (results.parent / "systems_cpu.png").exists()


@pytest.mark.parametrize("results", sorted(str(p.relative_to(REPO)) for p in REPO.glob("benchmarks/**/results*.json")))
def test_every_checked_in_results_file_renders(results: str) -> None:
    r = json.loads((REPO / results).read_text())
    block = readme.block(r, REPO / results, REPO)
    assert block.startswith(readme.BEGIN) and block.endswith(readme.END)
    assert "| requests in flight at the simulator (max) |" in block

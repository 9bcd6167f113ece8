"""What a user gets from ``pip install slurmgen`` (not ``-e``): the wheel built from this tree,
installed into a fresh venv (its own site-packages; dependencies from pip's cache), runs the
README's first command from another directory.

Select with ``-m wheel``; it takes about a minute with a warm pip cache.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

pytestmark = [pytest.mark.wheel, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
NAMESPACES = ("hydra_plugins",)  # Hydra's plugin namespace: no __init__.py of its own


def _source_dirs() -> dict[str, Path]:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {**{name: ROOT / d for name, d in mapping.items()}, **{n: ROOT / n for n in NAMESPACES}}


def _tracked(directory: Path) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", str(directory)],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def expected_files() -> set[str]:
    """Every file of the source tree's packages (code and data), as its path inside the wheel."""
    dirs = _source_dirs()
    files = set()
    for name, directory in dirs.items():
        for path in _tracked(directory):
            inner = [d for d in dirs.values() if d != directory and d.is_relative_to(directory)
                     and path.is_relative_to(d)]
            if not inner:  # a nested mapped directory is counted under its own name
                files.add("/".join([*name.split("."), *path.relative_to(directory).parts]))
    return files


def expected_packages() -> set[str]:
    return {f.rsplit("/", 1)[0].replace("/", ".") for f in expected_files() if f.endswith("/__init__.py")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the tree's files (a stale build/ here could hide a missing module)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for path in _tracked(ROOT):
        (source / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, source / path.relative_to(ROOT))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
                   check=True, cwd=out)
    (found,) = out.glob("slurmgen-*.whl")
    return found


def test_the_wheel_holds_every_package_and_data_file_of_the_tree(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = expected_packages()
    assert {"slurmgen.report", "slurmgen.runtime", "slurmgen.launchers", "slurmgen.agents.tau2",
            "hydra_plugins.slurmgen_launcher"} <= packages  # the walk sees the tree
    missing = sorted(f for f in expected_files() if f not in names)
    assert not missing, f"files of the source tree left out of the wheel: {missing}"


def test_the_installed_wheel_runs_the_readme_command_from_elsewhere(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", str(wheel)], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([python, "-c", "import slurmgen; print(slurmgen.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)), f"slurmgen imported from {where}, not from the fresh venv"
    done = subprocess.run([python, "-m", "slurmgen", "workflow=nr", "dataset.limit=20"], check=False,
                          cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.match(r"20 records \(\d+ ok, \d+ rejected, 0 failed\), \d+ tokens/s "
                    r"\(over the driver's wall time, [\d.]+ s, startup and stop included\); summary: ", last), last

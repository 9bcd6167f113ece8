"""The README's workflow type-checks as written, and mypy sees a typo in a knob it reads:
RoleContext is generic in the workflow's conf, Task in its row and state."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_readme_workflow import readme_example

pytestmark = pytest.mark.skipif(shutil.which("mypy") is None and not Path(sys.executable).with_name("mypy").exists(),
                                reason="mypy not installed (pip install -e '.[test]')")


REPO = Path(__file__).resolve().parents[2]


def mypy(path: Path) -> subprocess.CompletedProcess[str]:
    # MYPYPATH: mypy does not follow the editable install's import hook
    env = {**os.environ, "MYPYPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--follow-imports=silent", str(path)],
                          capture_output=True, text=True, timeout=600, check=False, cwd=path.parent, env=env)


def test_the_readme_workflow_type_checks_and_a_knob_typo_does_not(tmp_path: Path) -> None:
    source = readme_example()
    good = tmp_path / "myflow.py"
    good.write_text(source)
    assert mypy(good).returncode == 0, mypy(good).stdout
    typo = tmp_path / "typo.py"
    typo.write_text(source.replace("ctx.conf.max_words", "ctx.conf.max_wrods")
                    .replace("task.row.topic", "task.row.topik"))
    out = mypy(typo).stdout
    assert '"SloganConf" has no attribute "max_wrods"' in out, out
    assert '"Row" has no attribute "topik"' in out, out

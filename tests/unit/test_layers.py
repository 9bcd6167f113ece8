"""The dependency rules of DESIGN's "Layout", read from the source files' imports (AST).

Module names come from pyproject's ``package-dir`` (``launchers/`` is ``slurmgen.launchers``),
so an import of ``slurmgen.launchers.local`` is seen for what it is. The rules:

- nothing under ``slurmgen/`` imports a launcher (``slurmgen.launchers``), a workflow
  (``slurmgen.agents``) or a Hydra plugin (``hydra_plugins``); the one exception is the CLI
  entry, ``slurmgen/cli.py``, which registers the Hydra launcher plugin before Hydra starts;
- ``slurmgen/protocol.py`` imports only msgspec and the standard library;
- a workflow (a package under ``agents/``) imports only slurmgen's author module
  (``slurmgen.workflow``), its own package, the standard library and third-party ones.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE_CORE = ("slurmgen.launchers", "slurmgen.agents", "hydra_plugins")
CLI_ENTRY = "slurmgen.cli"  # may import hydra_plugins (registers the launcher plugin)
PROTOCOL_MAY_IMPORT = {"msgspec", "__future__", *sys.stdlib_module_names}


@dataclass(frozen=True)
class Violation:
    module: str
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.module} imports {self.imported}: {self.rule}"


def package_dirs(root: Path) -> dict[str, Path]:
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {name: root / directory for name, directory in mapping.items()}


def module_name(path: Path, package: str, directory: Path) -> str:
    parts = list(path.relative_to(directory).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def core_modules(root: Path) -> dict[str, Path]:
    """Every module of the core (files under ``slurmgen/``), by its import name."""
    directory = package_dirs(root)["slurmgen"]
    return {module_name(p, "slurmgen", directory): p for p in sorted(directory.rglob("*.py"))}


def imports(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module a source names in an import, top-level or inside a function; relative
    imports resolved; ``from a import b`` counts as ``a`` and ``a.b`` (b may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def check_core(module: str, source: str, is_package: bool = False) -> list[Violation]:
    """The rules for one core module's source."""
    out = []
    for name in sorted(imports(source, module, is_package)):
        if any(_within(name, p) for p in OUTSIDE_CORE) and not (module == CLI_ENTRY and _within(name, "hydra_plugins")):
            out.append(Violation(module, name, "the core imports no launcher, workflow or Hydra plugin"))
        if module == "slurmgen.protocol" and name.split(".")[0] not in PROTOCOL_MAY_IMPORT:
            out.append(Violation(module, name, "protocol.py imports only msgspec and the standard library"))
    return out


def check_tree(root: Path) -> list[Violation]:
    return [v for module, path in core_modules(root).items()
            for v in check_core(module, path.read_text(), path.name == "__init__.py")]


def test_the_core_imports_no_launcher_workflow_or_plugin_and_protocol_only_msgspec() -> None:
    modules = core_modules(ROOT)
    assert "slurmgen.run.driver" in modules and "slurmgen.protocol" in modules  # the walk sees the tree
    violations = check_tree(ROOT)
    assert not violations, "\n".join(map(str, violations))


def test_the_launchers_directory_is_read_as_slurmgen_launchers() -> None:
    dirs = package_dirs(ROOT)
    assert dirs["slurmgen.launchers"] == ROOT / "launchers"
    assert dirs["slurmgen.agents"] == ROOT / "agents"


def test_a_planted_violation_is_found(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    core = tmp_path / "slurmgen"
    (core / "run").mkdir(parents=True)
    (core / "__init__.py").write_text("")
    (core / "run" / "__init__.py").write_text("")
    (core / "run" / "bad.py").write_text(
        "import os\n"
        "from slurmgen import launchers\n"
        "def later():\n"
        "    from slurmgen.agents.nr import roles\n"
        "    import hydra_plugins.slurmgen_launcher\n")
    (core / "run" / "relative.py").write_text("from ..launchers import local\n")
    (core / "protocol.py").write_text("import msgspec\nimport json\nimport zmq\n")
    (core / "cli.py").write_text("from hydra_plugins.slurmgen_launcher import register\n")
    found = {(v.module, v.imported) for v in check_tree(tmp_path)}
    assert found == {
        ("slurmgen.run.bad", "slurmgen.launchers"),
        ("slurmgen.run.bad", "slurmgen.agents.nr"),
        ("slurmgen.run.bad", "slurmgen.agents.nr.roles"),
        ("slurmgen.run.bad", "hydra_plugins.slurmgen_launcher"),
        ("slurmgen.run.relative", "slurmgen.launchers"),
        ("slurmgen.run.relative", "slurmgen.launchers.local"),
        ("slurmgen.protocol", "zmq"),
    }


def test_the_cli_entry_may_register_the_plugin_but_not_import_a_launcher() -> None:
    assert not check_core(CLI_ENTRY, "from hydra_plugins.slurmgen_launcher import register\n")
    assert check_core(CLI_ENTRY, "from slurmgen.launchers.slurm import SlurmLauncher\n")


AUTHOR_MODULE = "slurmgen.workflow"


def workflow_modules(root: Path) -> dict[str, Path]:
    directory = package_dirs(root)["slurmgen.agents"]
    return {module_name(p, "slurmgen.agents", directory): p for p in sorted(directory.rglob("*.py"))}


def check_workflow(module: str, source: str, is_package: bool = False) -> list[Violation]:
    """A workflow's slurmgen imports: the author module and its own package only."""
    own = ".".join(module.split(".")[:3])  # slurmgen.agents.<workflow>
    return [Violation(module, name, f"a workflow imports only {AUTHOR_MODULE} and its own package")
            for name in sorted(imports(source, module, is_package))
            if _within(name, "slurmgen") and name != "slurmgen"
            and not (_within(name, AUTHOR_MODULE) or _within(name, own))]


def test_workflows_import_only_the_author_module() -> None:
    modules = workflow_modules(ROOT)
    assert {"slurmgen.agents.nr", "slurmgen.agents.coral.roles", "slurmgen.agents.tau2.domain"} <= set(modules)
    violations = [v for module, path in modules.items()
                  for v in check_workflow(module, path.read_text(), path.name == "__init__.py")]
    assert not violations, "\n".join(map(str, violations))


def test_a_workflow_importing_the_core_is_found() -> None:
    source = ("import json\nimport msgspec\nfrom slurmgen.workflow import Task\nfrom . import data\n"
              "from slurmgen.agents.nr.parse import SUCCESS\nfrom slurmgen.protocol import Turn\n"
              "def later():\n    from slurmgen.llm.client import LLMClient\n    from ..coral import roles\n")
    found = {v.imported for v in check_workflow("slurmgen.agents.nr.roles", source)}
    assert found == {"slurmgen.protocol", "slurmgen.protocol.Turn", "slurmgen.llm.client",
                     "slurmgen.llm.client.LLMClient", "slurmgen.agents.coral", "slurmgen.agents.coral.roles"}

"""Packages found by discovery, under the import names ``[tool.setuptools] package-dir`` gives
their directories (``launchers/`` installs as ``slurmgen.launchers``): a new subpackage ships
without a hand-kept list. Everything else is in pyproject.toml."""

import sys
from pathlib import Path

from setuptools import find_packages, setup

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

HERE = Path(__file__).parent
NAMESPACES = ("hydra_plugins",)  # no __init__.py (Hydra's plugin convention): only its subpackages ship


def discovered(package_dir: dict[str, str]) -> list[str]:
    """Each mapped package and the regular packages below its directory, plus the namespaces'."""
    roots = {**package_dir, **{name: name for name in NAMESPACES}}
    found = [name for name in package_dir]
    for name, directory in roots.items():
        found += [f"{name}.{sub}" for sub in find_packages(str(HERE / directory))]
    return sorted(set(found))


if __name__ == "__main__":
    package_dir = tomllib.loads((HERE / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    setup(packages=discovered(package_dir))

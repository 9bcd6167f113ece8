"""``run.validate_only=true``: check the config and every row of the dataset, start nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from slurmgen.config.bounds import check_bounds
from slurmgen.config.types import SlurmgenConf
from slurmgen.config.workflows import builtin_dataset, get_workflow
from slurmgen.input import dataset, formats
from slurmgen.run.plan import make_plan


@dataclass
class Validation:
    rows: int = 0
    bad: list[str] = field(default_factory=list)  # one reason per bad row, naming its line

    @property
    def ok(self) -> bool:
        return not self.bad


def validate(conf: SlurmgenConf) -> Validation:
    """Raises SlurmgenError for a config problem; returns the bad rows otherwise."""
    check_bounds(conf)
    workflow = get_workflow(conf.workflow.name)
    hub = f"{formats.HUB}{conf.dataset.hf}:{conf.dataset.split}" if conf.dataset.hf else ""
    path = (dataset.check_path(hub or conf.dataset.path) if hub or conf.dataset.path
            else Path(builtin_dataset(workflow, conf)))
    make_plan(conf, Path(conf.run.dir))
    dataset.find_duplicates(path, conf.dataset.limit, workflow.row, conf.dataset.max_row_bytes,
                            conf.dataset.on_duplicate, f"dataset.path={conf.dataset.path or 'built-in'!r}")
    result = Validation()
    for _, lineno, line in dataset.iter_lines(path, conf.dataset.limit):
        result.rows += 1
        row = dataset.parse_row(lineno, line, workflow.row, conf.dataset.max_row_bytes, dataset.unit(path))
        if isinstance(row, dataset.BadRow):
            result.bad.append(row.reason)
    return result


def report(result: Validation, path: str) -> str:
    head = f"{path or 'built-in dataset'}: {result.rows} rows, {len(result.bad)} bad"
    return "\n".join([head, *(f"  {reason}" for reason in result.bad[:200]),
                      *([f"  … and {len(result.bad) - 200} more"] if len(result.bad) > 200 else [])])

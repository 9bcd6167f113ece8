"""Before any process starts: check the config and the dataset, make the run directory.

The driver and the sbatch renderer (``launchers/render.py``) both start here.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from slurmgen.config.bounds import check_bounds
from slurmgen.config.load import dump, workflow_spec
from slurmgen.config.types import SlurmgenConf
from slurmgen.config.workflows import builtin_dataset, get_workflow
from slurmgen.errors import DatasetError
from slurmgen.input import dataset, duplicates, formats, schema
from slurmgen.proc import fdlimit
from slurmgen.run import lock
from slurmgen.run.plan import make_plan
from slurmgen.run.resume import check_resume
from slurmgen.run.watchdog import check_conf as check_watchdog_conf
from slurmgen.rundir import RunDir, write_atomic
from slurmgen.transport import curve
from slurmgen.workflow import Workflow


def prepare(conf: SlurmgenConf) -> tuple[RunDir, Workflow, int, lock.Holder]:
    """Everything that can fail before a process starts fails here."""
    fdlimit.raise_nofile()  # the processes started here inherit it
    check_bounds(conf)
    workflow = get_workflow(conf.workflow.name)
    if conf.dataset.hf:
        conf.dataset.path = str(dataset.check_path(f"{formats.HUB}{conf.dataset.hf}:{conf.dataset.split}"))
    elif conf.dataset.path:
        conf.dataset.path = str(dataset.check_path(conf.dataset.path))
    else:
        conf.dataset.path = str(builtin_dataset(workflow, conf))
    make_plan(conf, Path(conf.run.dir))  # validates backends and sizes
    check_watchdog_conf(conf.run)
    source = Path(conf.dataset.path)
    conf.dataset.format = formats.detect(source)
    schema.refuse_json_array(source, conf.dataset.format)
    schema.check_columns(source, conf.dataset.format, workflow.row, "workflow.row")
    conf.dataset.fingerprint = formats.fingerprint(source, conf.dataset.format)
    rows, dups = scan_rows(conf, workflow)
    expected = (rows - len(dups.skipped)) * conf.run.trials
    if expected == 0:
        raise DatasetError(f"dataset.path={conf.dataset.path!r} has no rows: nothing to run. Give a file with "
                           "one row per line (or a Parquet / Hugging Face dataset), or drop dataset.path for the "
                           "workflow's built-in data")
    run = RunDir(Path(conf.run.dir).resolve())
    conf.run.dir = str(run.root)
    text = dump(conf)
    check_resume(run, conf)
    holder = lock.acquire(run.make_writable())
    try:
        curve.prepare_keys(run.root, conf.run.curve)
        write_atomic(run.config, text.encode())
        write_atomic(duplicates.path(run.state), msgspec.json.encode(dups))
        write_atomic(run.state / "workflow.json", msgspec.json.encode(workflow_spec(conf.workflow.name)))
    except BaseException:
        lock.release(run, holder)
        raise
    return run, workflow, expected, holder


def scan_rows(conf: SlurmgenConf, workflow: Workflow) -> tuple[int, duplicates.Duplicates]:
    """Count the rows and find duplicate ids (refused unless dataset.on_duplicate says otherwise)."""
    d = conf.dataset
    return dataset.find_duplicates(Path(d.path), d.limit, workflow.row, d.max_row_bytes, d.on_duplicate,
                                   f"dataset.path={d.path!r}")

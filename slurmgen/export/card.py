"""The dataset card written beside an export: where the data came from and what is in it."""

from __future__ import annotations

import json
from pathlib import Path

from slurmgen.rundir import RunDir


def card(run: RunDir, *, out: Path, fmt: str, shape: str, statuses: str, rows: int, records: int) -> str:
    summary = json.loads(run.summary.read_text()) if run.summary.exists() else None
    live = "" if summary else "\nThe run had not finished when this was exported (no summary.json yet).\n"
    counts = ("" if summary is None else
              f"| records in the run | {summary['tasks_total']} |\n| ok / rejected / failed | {summary['tasks_ok']} / "
              f"{summary['tasks_rejected']} / {summary['tasks_failed']} |\n| prompt / completion tokens | "
              f"{summary['prompt_tokens']} / {summary['completion_tokens']} |\n")
    metrics = "" if summary is None else "\n## Metrics\n\n```json\n" + json.dumps(summary["metrics"], indent=2) + "\n```\n"
    return f"""# {out.name}

Exported by `slurmgen export` from the run `{run.root}`.
{live}
| | |
|---|---|
| format / shape | {fmt} / {shape} |
| records exported (status {statuses}) | {records} |
| rows written | {rows} |
{counts}{metrics}
## Run config

```yaml
{run.config.read_text().rstrip()}
```
"""


def card_path(out: Path, fmt: str) -> Path:
    """Inside a Hugging Face dataset directory; beside a file otherwise."""
    return out / "README.md" if fmt == "hf" else out.with_name(out.name + ".README.md")

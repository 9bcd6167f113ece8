"""Per-process log files under ``<run>/logs/``: text lines, or JSON lines (``run.log_format``).

Every line that concerns a task carries ``task=<id>`` in its message; in JSON lines it is
also a field of its own (``"task"``), so ``jq 'select(.task == "ID")'`` finds a task's lines.
The driver passes the format to its processes in ``SLURMGEN_LOG_FORMAT``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import msgspec

from slurmgen.errors import ConfigError

FORMAT = "%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s"
FORMATS = ("text", "json")
FORMAT_ENV = "SLURMGEN_LOG_FORMAT"
_TASK = re.compile(r"\btask=(\S+)")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, pid, msg, task (when there is one), exc."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        line: dict[str, object] = {"ts": round(record.created, 3), "level": record.levelname,
                                   "logger": record.name, "pid": record.process, "msg": msg}
        task = _TASK.search(msg)
        if task:
            line["task"] = task.group(1)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"run.log_format={fmt!r} is unknown; valid: {', '.join(FORMATS)}")
    return fmt


def setup_logging(path: Path, level: int = logging.INFO, fmt: str | None = None) -> None:
    """Send this process's logging to ``path``; ``fmt`` defaults to $SLURMGEN_LOG_FORMAT, else text."""
    fmt = check_format(fmt or os.environ.get(FORMAT_ENV) or "text")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

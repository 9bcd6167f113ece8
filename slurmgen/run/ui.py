"""The driver's progress bar: tasks done, tasks/s, tokens/s, failures."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from slurmgen.run.progress import Counts


class ProgressBar:
    """A tqdm bar on a terminal; on a pipe or a log file, one plain line every ``every_s`` seconds."""

    def __init__(self, total: int, initial: Counts, enabled: bool, every_s: float = 0.0) -> None:
        self._start = time.monotonic()
        self._base_tokens = initial.tokens
        self._base_done = initial.done
        self._total = total
        tty = sys.stderr.isatty()
        self._every_s = every_s if enabled and not tty else 0.0
        self._next_line = self._start + self._every_s
        self._bar = tqdm(total=total, initial=initial.done, unit="task", dynamic_ncols=True,
                         disable=not enabled or not tty, file=sys.stderr)

    def update(self, counts: Counts) -> None:
        elapsed = max(1e-6, time.monotonic() - self._start)
        if self._every_s and time.monotonic() >= self._next_line:
            self._next_line += self._every_s
            self._line(counts, elapsed)
        self._bar.n = counts.done
        self._bar.set_postfix(
            tok_s=f"{(counts.tokens - self._base_tokens) / elapsed:.0f}",
            rejected=counts.rejected, failed=counts.failed, refresh=False)
        self._bar.refresh()

    def _line(self, counts: Counts, elapsed: float) -> None:
        share = 100 * counts.done / self._total if self._total else 100.0
        print(f"progress: {counts.done}/{self._total} tasks ({share:.0f} %), "
              f"{(counts.done - self._base_done) / elapsed:.1f} tasks/s, "
              f"{(counts.tokens - self._base_tokens) / elapsed:.0f} tokens/s, {counts.rejected} rejected, "
              f"{counts.failed} failed, {elapsed:.0f} s", file=sys.stderr, flush=True)

    def close(self) -> None:
        self._bar.close()

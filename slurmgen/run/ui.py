"""The driver's progress bar: tasks done, tasks/s, tokens/s, failures."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from slurmgen.run.progress import Counts


class ProgressBar:
    def __init__(self, total: int, initial: Counts, enabled: bool) -> None:
        self._start = time.monotonic()
        self._base_tokens = initial.tokens
        self._base_done = initial.done
        self._bar = tqdm(total=total, initial=initial.done, unit="task", dynamic_ncols=True,
                         disable=not enabled or not sys.stderr.isatty(), file=sys.stderr)

    def update(self, counts: Counts) -> None:
        elapsed = max(1e-6, time.monotonic() - self._start)
        self._bar.n = counts.done
        self._bar.set_postfix(
            tok_s=f"{(counts.tokens - self._base_tokens) / elapsed:.0f}",
            rejected=counts.rejected, failed=counts.failed, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()

"""What a section of the benchmark is, and what it is handed when it runs.

A section (``sections/<name>.py``) is one object satisfying ``Section``: a name, its typed
parameters in the two modes (``quick``, ``full``), ``run(ctx, params)`` returning its typed
result, and the rows it adds to the printed table and the README's block (``table``: each
renderer with its slot, so that the table keeps one order whichever sections ran).

A section's result is a ``SectionResult``: a Struct whose fields are the top-level keys of
results.json it owns; ``store`` writes them there (a section sharing a key with another
overrides it). Renderers read results.json as written, also files of older runs, so they
take the plain dict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec

from .common import bench_dataset, dump_json
from .params import Params, Shared

Row = tuple[str, str, str]  # (metric, value, target): targets printed, never asserted
RowsFn = Callable[[dict[str, Any]], list[Row]]
P = TypeVar("P", bound=msgspec.Struct)


def to_json(value: object) -> Any:
    """A result's value as results.json holds it (Structs as objects, paths as strings)."""
    return msgspec.to_builtins(value, enc_hook=str)


class SectionResult(msgspec.Struct, kw_only=True):
    """The top-level keys of results.json a section owns (UNSET: left as they are)."""

    def store(self, results: dict[str, Any]) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is not msgspec.UNSET:
                results[name] = to_json(value)


@dataclass
class Context:
    """What every section runs with: the output directory, the run-wide switches, the parameters
    and the results so far (saved after each section, and by a long section as it goes)."""

    out: Path
    curve_on: bool  # run.curve in every run (the cpu section measures both)
    spill: bool | None  # spill.enabled in every run but the spill section's (None: the run's default)
    params: Params
    results: dict[str, Any]

    @property
    def shared(self) -> Shared:
        return self.params.shared

    def save(self) -> None:
        dump_json(self.out / "results.json", self.results)

    def publish(self, result: SectionResult) -> None:
        """A section's result so far, into results.json now (a long section's progress survives a kill)."""
        result.store(self.results)
        self.save()

    def dataset(self, workflow: str) -> str:
        """The shared JSONL of ``workflow`` (nr or coral), ``nr_rows`` or ``coral_rows`` rows."""
        rows = {"nr": self.shared.nr_rows, "coral": self.shared.coral_rows}[workflow]
        return str(bench_dataset(workflow, rows))

    def peak(self, value: float) -> None:
        """Requests in flight at the simulator: the run's maximum over every section."""
        self.results["server_max_in_flight"] = max(self.results.get("server_max_in_flight") or 0, int(value))

    def spill_in_runs(self) -> str:
        return {False: "off", True: "on", None: "default"}[self.spill]


class Section(Protocol[P]):
    """One section of the benchmark (see the module's docstring)."""

    @property
    def name(self) -> str: ...

    @property
    def opt_in(self) -> bool:
        """Run only when named in --only, or with --peers (minutes each)."""

    @property
    def quick(self) -> P:
        """The CI smoke set's parameters."""

    @property
    def full(self) -> P:
        """The full set's parameters."""

    @property
    def table(self) -> Sequence[tuple[int, RowsFn]]:
        """(slot, renderer): the rows it adds to the table, placed by slot among every section's."""

    def run(self, ctx: Context, p: P) -> SectionResult: ...

"""The benchmark's parameters: typed, each knob declared once, in two modes (quick, full).

Knobs more than one section reads are ``Shared``'s; each section declares its own in its
module (``sections/*.py``: ``Params``, with its ``quick`` and ``full`` values). A knob
the same in both modes has its value as the field's default. ``--set KEY=VALUE`` finds
the knob by name wherever it is declared, and converts VALUE (JSON, or a bare string) to
its type.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, field
from typing import Any

import msgspec


class Shared(msgspec.Struct, kw_only=True):
    """Knobs several sections read."""

    scale: float = 20.0  # simulator time scale of the saturation (coral), pools and spill runs
    replicas: int = 2  # simulator replicas of the coral saturation, cpu, scale and spill runs
    peers: int = 2  # agent peers of a slurmgen run (at least replicas / 2 in saturation)
    per_replica: int = 256  # tasks in flight per replica (a run's max_in_flight = this x replicas)
    warm: float  # s from the first token to the measured window
    window: float  # s measured
    record_tasks: int  # tasks of the recorded request stream the ideal client replays
    repeats: int  # interleaved repeats of each system (their mean is reported)
    nr_rows: int  # rows of the nr dataset every system reads
    coral_rows: int  # rows of the coral dataset every system reads


SHARED_QUICK = Shared(warm=3.0, window=6.0, record_tasks=1000, repeats=1, nr_rows=5000, coral_rows=5000)
SHARED_FULL = Shared(warm=8.0, window=30.0, record_tasks=5000, repeats=2, nr_rows=20000, coral_rows=15000)


class ParamError(ValueError):
    """A --set the parameters do not take (the message names the key and what it takes)."""


@dataclass
class Params:
    """One run's parameters: the shared knobs and each section's (section name -> its Params)."""

    shared: Shared
    sections: dict[str, msgspec.Struct] = field(default_factory=dict)

    def of(self, name: str) -> Any:
        return self.sections[name]

    def groups(self) -> dict[str, msgspec.Struct]:
        return {"shared": self.shared, **self.sections}

    def flat(self) -> dict[str, Any]:
        """Every knob by name, as results.json's ``params`` holds them."""
        out: dict[str, Any] = {}
        for group in self.groups().values():
            out.update(msgspec.to_builtins(group))
        return out

    def set(self, item: str) -> None:
        """Apply one ``KEY=VALUE`` (VALUE as JSON, or a bare string), converted to the knob's type."""
        key, sep, text = item.partition("=")
        if not sep:
            raise ParamError(f"--set {item}: expected KEY=VALUE (e.g. --set window=60; lists as JSON)")
        for name, group in self.groups().items():
            if key in group.__struct_fields__:
                value = _convert(key, text, msgspec.structs.fields(group)[group.__struct_fields__.index(key)].type)
                replaced = msgspec.structs.replace(group, **{key: value})
                if name == "shared":
                    self.shared = replaced  # type: ignore[assignment]
                else:
                    self.sections[name] = replaced
                return
        raise ParamError(f"--set {key}: unknown parameter; known: {', '.join(sorted(self.flat()))}")


def _convert(key: str, text: str, kind: Any) -> Any:
    try:
        raw = json.loads(text)
    except ValueError:
        raw = text  # a bare word: a string knob's value, or a mistake the conversion names
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ParamError(f"--set {key}={text}: {exc} (the knob is {_type_name(kind)})") from None


def _type_name(kind: Any) -> str:
    """``float``, ``list[int]``, ``dict[str, int]``: as the knob is declared."""
    return str(kind) if typing.get_args(kind) else getattr(kind, "__name__", str(kind))

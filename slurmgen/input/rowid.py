"""A row's own id, as its task will carry it, from as few of its fields as row_id() reads.

The peers compute a good row's id from the row decoded whole (``row_type.row_id()``). A
row that fails validation keeps its own id when the fields row_id() reads can be read:
those are decoded as the row type has them (or leniently, any JSON value, when they are
of another type), the rest as any JSON value.

The driver's duplicate scan of a columnar input (Parquet, Hugging Face) reads only the
columns row_id() uses, which it learns as it goes: a column it did not read is an
``_Unread`` value, and using one raises ``NeedColumn`` so that the scan starts again with
that column too. The ids are the peers' ids either way: the scan's column list is
written for the peers, and a bad row's id is made from the same typed columns.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec


class NeedColumn(Exception):
    """row_id() used a column the scan did not read."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Missing:
    """A field the row does not give: any use of it in row_id() raises (no id is made of it)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise self._error()

    def _error(self) -> Exception:
        return ValueError("absent field")

    def _raise(self, *_: object) -> Any:
        raise self._error()

    __str__ = __repr__ = __format__ = __bool__ = __len__ = __iter__ = __getitem__ = _raise
    __eq__ = __lt__ = __add__ = __radd__ = __contains__ = __int__ = _raise
    __hash__ = None  # type: ignore[assignment]  # these values are unhashable on purpose


class _Unread(_Missing):
    """A column the id scan did not read."""

    def __init__(self, name: str) -> None:
        self.__dict__["name"] = name

    def _error(self) -> Exception:
        return NeedColumn(self.__dict__["name"])


ABSENT = _Missing()


def _is_struct(t: object) -> bool:
    return isinstance(t, type) and issubclass(t, msgspec.Struct)


def _rename(row_type: type[msgspec.Struct]) -> dict[str, str]:
    return {f.name: f.encode_name for f in msgspec.structs.fields(row_type)}


@functools.cache
def lenient(row_type: type[msgspec.Struct], columns: frozenset[str] | None = None) -> type[msgspec.Struct]:
    """``row_type``'s fields, each optional and any JSON value (a nested Struct: its own lenient
    type); with ``columns``, a field outside them is ``_Unread``."""
    fields = [(f.name, (lenient(f.type) | None) if _is_struct(f.type) else Any,
               _Unread(f.name) if columns is not None and f.name not in columns else ABSENT)
              for f in msgspec.structs.fields(row_type)]
    return msgspec.defstruct(f"Lenient{row_type.__name__}", fields, kw_only=True, rename=_rename(row_type))


@functools.cache
def idtype(row_type: type[msgspec.Struct], columns: frozenset[str]) -> type[msgspec.Struct]:
    """``row_type`` with only ``columns`` typed (and required as there); every other field is any
    JSON value, ``_Unread`` when absent. Its methods are ``row_type``'s."""
    fields: list[Any] = []
    for f in msgspec.structs.fields(row_type):
        if f.name not in columns:
            fields.append((f.name, Any, _Unread(f.name)))
        elif f.default is not msgspec.NODEFAULT:
            fields.append((f.name, f.type, f.default))
        elif f.default_factory is not msgspec.NODEFAULT:
            fields.append((f.name, f.type, msgspec.field(default_factory=f.default_factory)))
        else:
            fields.append((f.name, f.type))
    return msgspec.defstruct(f"Id{row_type.__name__}", fields, bases=(row_type,), kw_only=True,
                             rename=_rename(row_type))


def typed_id(value: object) -> str:
    """A good row's id as its task carries it ("" = none)."""
    return str(value)


def own_id(line: bytes, row_type: type[msgspec.Struct], columns: frozenset[str] | None) -> str:
    """The id row_id() gives the fields it reads ("" when it cannot). ``columns``: the fields it
    reads, decoded with their types (None: every field, which a bad row fails on: lenient)."""
    try:
        row: Any = msgspec.json.decode(line, type=idtype(row_type, columns) if columns is not None else row_type)
        typed = True
    except msgspec.ValidationError:
        try:
            row, typed = msgspec.json.decode(line, type=lenient(row_type, columns)), False
        except (msgspec.ValidationError, msgspec.DecodeError):  # not an object at all
            return ""
    except msgspec.DecodeError:
        return ""
    try:
        value = row_type.row_id(row)  # type: ignore[attr-defined]  # row_id() is the workflow's row type's method
    except NeedColumn:
        raise
    except Exception:  # noqa: BLE001 - row_id() needs a field this row lacks or has of another type
        return ""
    if typed:
        return typed_id(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "None":
        return ""  # "None": made of a field the row gives as null
    return str(value)

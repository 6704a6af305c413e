"""Echo suppression for polled changes: a record whose only change is this connection's own write.

On the change-event stream an echo is easy to see: Salesforce stamps the event with the writer's
``Sforce-Call-Options`` client name (``changeOrigin``), and ``ignore-own-writes`` skips it. A polled
record carries no such stamp; all a poll sees is that ``SystemModstamp`` moved. So the connection
keeps :class:`OwnWrites`, the fields it last wrote to each record, and a trigger that ignores its own
writes keeps :class:`EchoFilter`, what each record held when it was last handled. A polled record
is an echo when this connection wrote to it since and every other field still holds what was
handled: nothing anybody else changed is lost, since a change by someone else to any field (before or
after the write-back, in the same poll interval or not) makes it unequal. Both are kept in memory
and bounded; after a restart, or when the write was made by another replica, an echo is handled
once more (the flows' writes are idempotent), never missed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

__all__ = ["EchoFilter", "OwnWrites"]

#: Fields every write moves, whoever makes it; they say nothing about what changed.
_SYSTEM_FIELDS = frozenset({"attributes", "SystemModstamp", "LastModifiedDate", "LastModifiedById",
                            "LastViewedDate", "LastReferencedDate"})


def _value(value: Any) -> Any:
    """One form per value as Salesforce stores it: "" is null; 12, 12.0 and "12.0" in a number
    field come back as 12.0 (a number sent as text stays text, and compares unequal: handled)."""
    if value == "" or value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def _fingerprint(value: Any) -> int:
    return hash(repr(_value(value)))


class OwnWrites:
    """The fields this connection last wrote to each record (the most recent ``size`` records)."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._writes: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def record(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """A successful write of ``fields`` to one record."""
        key = (sobject, str(record_id))
        written = self._writes.pop(key, {})
        written.update({k: _value(v) for k, v in fields.items() if k not in ("Id", "attributes")})
        self._writes[key] = written
        while len(self._writes) > self.size:
            self._writes.popitem(last=False)

    def written(self, sobject: str, record_id: str) -> Mapping[str, Any]:
        """What this connection last wrote to the record (empty: nothing it remembers)."""
        return self._writes.get((sobject, str(record_id)), {})


class EchoFilter:
    """What each handled record of one object held, to tell an echo of an own write from a change."""

    def __init__(self, writes: OwnWrites, sobject: str, size: int = 20_000) -> None:
        self.writes = writes
        self.sobject = sobject
        self.size = size
        self._handled: OrderedDict[str, dict[str, int]] = OrderedDict()

    def remember(self, record: Mapping[str, Any]) -> None:
        """``record`` was handled (or found to be an echo) as it is now."""
        record_id = str(record.get("Id"))
        self._handled.pop(record_id, None)
        self._handled[record_id] = {k: _fingerprint(v) for k, v in record.items()
                                    if k not in _SYSTEM_FIELDS}
        while len(self._handled) > self.size:
            self._handled.popitem(last=False)

    def is_echo(self, record: Mapping[str, Any]) -> bool:
        """Whether the only change to ``record`` since it was handled is this connection's write."""
        record_id = str(record.get("Id"))
        handled = self._handled.get(record_id)
        written = self.writes.written(self.sobject, record_id)
        if handled is None or not written:
            return False
        for name, value in record.items():
            if name in _SYSTEM_FIELDS:
                continue
            if name in written and _value(value) == written[name]:
                continue
            if handled.get(name) != _fingerprint(value):
                return False
        return True

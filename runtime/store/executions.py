"""Execution history: one record per execution, newest first, searchable by flow and business id.

Records live in the ``executions`` namespace under a key that sorts *newest first*: the time part of
the execution id (:func:`runtime.store.ids.new_id`) with every digit complemented (``9 - d``), so
the store's key order (ascending) is the order an operator reads them in, and ``after`` pages
towards older ones. Small index entries in ``execution-index`` (``flow/<flow>/<key>``,
``id/<business id>/<key>``, ``corr/<correlation id>/<key>``, ``letter/<dead letter id>``) make the
usual filters a prefix scan instead of a scan of every record.

Every entry is written with the retention age as its TTL, so old records expire on every backend
without a sweep; :meth:`ExecutionHistory.prune` keeps each flow to its newest ``max_per_flow``.
Records are written in batches (:meth:`ExecutionHistory.add_many`, one ``put_many``) by the
runtime's background writer (:mod:`runtime.history`), never on a flow's hot path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runtime.store.base import ObjectStore
from runtime.store.ids import scan, utc_iso

__all__ = [
    "EXECUTIONS_NAMESPACE",
    "normalize_time",
    "EXECUTION_INDEX_NAMESPACE",
    "OUTCOMES",
    "ExecutionFilter",
    "ExecutionHistory",
    "execution_key",
]

EXECUTIONS_NAMESPACE = "executions"
EXECUTION_INDEX_NAMESPACE = "execution-index"
#: How an execution ended; ``retried`` marks a dead-lettered one whose replay ran since.
OUTCOMES = ("completed", "failed", "dead-lettered", "retried")

_COMPLEMENT = bytes.maketrans(b"0123456789", b"9876543210")


def execution_key(execution_id: str) -> str:
    """The store key of an execution id, and back (the mapping is its own inverse)."""
    moment, sep, rest = execution_id.partition("-")
    return moment.encode("ascii", "replace").translate(_COMPLEMENT).decode("ascii") + sep + rest


def normalize_time(text: str) -> str:
    """An ISO 8601 date or time (UTC unless it names an offset) in the form records store
    (``startedAt``), for ``since`` / ``until``; :class:`ValueError` for anything else."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return utc_iso(moment.timestamp())


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """What :meth:`ExecutionHistory.list` selects; ``since``/``until`` are execution ids or ISO
    times compared with the record's start (``startedAt``)."""

    flow: str | None = None
    outcome: str | None = None
    record_id: str | None = None
    correlation_id: str | None = None
    since: str | None = None
    until: str | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether a record passes every filter (the index only narrowed the scan)."""
        if self.flow is not None and record.get("flow") != self.flow:
            return False
        if self.outcome is not None and record.get("outcome") != self.outcome:
            return False
        if self.record_id is not None and self.record_id not in (record.get("recordIds") or ()):
            return False
        if self.correlation_id is not None and record.get("correlationId") != self.correlation_id:
            return False
        started = str(record.get("startedAt", ""))
        if self.until is not None and started > self.until:
            return False
        return True

    def too_old(self, record: dict[str, Any]) -> bool:
        """Whether a record (and so every later one in key order) started before ``since``."""
        return self.since is not None and str(record.get("startedAt", "")) < self.since


class ExecutionHistory:
    """The execution records of every flow, in one store namespace plus its index."""

    def __init__(self, store: ObjectStore, *, retention: float | None = 7 * 86400.0,
                 max_per_flow: int = 10_000) -> None:
        self.store = store
        self.retention = retention
        self.max_per_flow = max_per_flow

    # -- writing ----------------------------------------------------------------------------------

    async def add_many(self, records: Sequence[dict[str, Any]]) -> None:
        """Write finished records (each with ``id``, ``flow``...) and their index entries at once."""
        entries: list[tuple[str, str, Any]] = []
        for record in records:
            key = execution_key(str(record["id"]))
            entries.append((EXECUTIONS_NAMESPACE, key, record))
            entries.append((EXECUTION_INDEX_NAMESPACE, f"flow/{record['flow']}/{key}", key))
            for business_id in record.get("recordIds") or ():
                entries.append((EXECUTION_INDEX_NAMESPACE, f"id/{business_id}/{key}", key))
            if record.get("correlationId"):
                entries.append((EXECUTION_INDEX_NAMESPACE, f"corr/{record['correlationId']}/{key}", key))
            if record.get("deadLetterId"):
                entries.append((EXECUTION_INDEX_NAMESPACE, f"letter/{record['deadLetterId']}", key))
        await self.store.put_many(entries, ttl=self.retention)

    async def mark_retried(self, letter_id: str, by_execution: str) -> bool:
        """The execution that kept ``letter_id`` was replayed by ``by_execution``: say so on it."""
        key = await self.store.get(EXECUTION_INDEX_NAMESPACE, f"letter/{letter_id}")
        if not isinstance(key, str):
            return False
        record = await self.store.get(EXECUTIONS_NAMESPACE, key)
        if not isinstance(record, dict):
            return False
        updated = {**record, "outcome": "retried", "retriedBy": by_execution}
        return await self.store.compare_and_set(EXECUTIONS_NAMESPACE, key, record, updated,
                                                ttl=self.retention)

    # -- reading ----------------------------------------------------------------------------------

    async def get(self, execution_id: str) -> dict[str, Any] | None:
        """One record by execution id."""
        record = await self.store.get(EXECUTIONS_NAMESPACE, execution_key(execution_id))
        return record if isinstance(record, dict) else None

    async def list(self, where: ExecutionFilter | None = None, *, limit: int = 50,
                   after: str | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` records, newest first; pass the last id as ``after`` for the next page."""
        where = where or ExecutionFilter()
        found: list[dict[str, Any]] = []
        if limit <= 0:
            return found
        async for record in self._candidates(where, after):
            if where.too_old(record):
                break
            if where.matches(record):
                found.append(record)
                if len(found) >= limit:
                    break
        return found

    async def count(self, flow: str | None = None) -> int:
        """How many records are kept (of ``flow``)."""
        if flow is None:
            return await self.store.count(EXECUTIONS_NAMESPACE)
        return await self.store.count(EXECUTION_INDEX_NAMESPACE, f"flow/{flow}/")

    async def _candidates(self, where: ExecutionFilter,
                          after: str | None) -> AsyncIterator[dict[str, Any]]:
        after_key = execution_key(after) if after else None
        if where.record_id is not None:
            prefix = f"id/{where.record_id}/"
        elif where.correlation_id is not None:
            prefix = f"corr/{where.correlation_id}/"
        elif where.flow is not None:
            prefix = f"flow/{where.flow}/"
        else:
            async with scan(self.store, EXECUTIONS_NAMESPACE, after=after_key) as entries:
                async for _, record in entries:
                    if isinstance(record, dict):
                        yield record
            return
        async with scan(self.store, EXECUTION_INDEX_NAMESPACE, prefix,
                        after=prefix + after_key if after_key else None) as entries:
            async for _, key in entries:
                record = await self.store.get(EXECUTIONS_NAMESPACE, str(key))
                if isinstance(record, dict):
                    yield record

    # -- retention --------------------------------------------------------------------------------

    async def prune(self, flows: Sequence[str]) -> int:
        """Keep each flow's newest ``max_per_flow`` records; returns how many were removed.

        Age is handled by the entries' TTL; this bounds a busy flow within the retention age.
        Deletes go one by one, in the background, so that no flow waits on a long transaction.
        """
        removed = 0
        for flow in flows:
            prefix = f"flow/{flow}/"
            if await self.store.count(EXECUTION_INDEX_NAMESPACE, prefix) <= self.max_per_flow:
                continue
            surplus: list[str] = []
            async with scan(self.store, EXECUTION_INDEX_NAMESPACE, prefix) as entries:
                seen = 0
                async for _, key in entries:
                    seen += 1
                    if seen > self.max_per_flow:
                        surplus.append(str(key))
            for key in surplus:
                await self._delete(flow, key)
                removed += 1
        return removed

    async def _delete(self, flow: str, key: str) -> None:
        record = await self.store.get(EXECUTIONS_NAMESPACE, key)
        if isinstance(record, dict):
            for business_id in record.get("recordIds") or ():
                await self.store.delete(EXECUTION_INDEX_NAMESPACE, f"id/{business_id}/{key}")
            if record.get("correlationId"):
                await self.store.delete(EXECUTION_INDEX_NAMESPACE,
                                        f"corr/{record['correlationId']}/{key}")
            if record.get("deadLetterId"):
                await self.store.delete(EXECUTION_INDEX_NAMESPACE, f"letter/{record['deadLetterId']}")
        await self.store.delete(EXECUTIONS_NAMESPACE, key)
        await self.store.delete(EXECUTION_INDEX_NAMESPACE, f"flow/{flow}/{key}")


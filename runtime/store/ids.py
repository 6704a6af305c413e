"""Identifiers, timestamps and small store idioms shared by the helpers.

Dead letters, inbox deliveries and job runs are keyed by ids that sort by creation time, so that
:meth:`ObjectStore.items` (key order) lists them oldest first without an index of their own.
An id reads ``20261124T215012.483920Z-1f3a9c0d``: UTC time to the microsecond, then 32 random bits
so that ids from different processes never clash. Within one process ids are strictly increasing
even when the clock stands still or steps back.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime.store.base import ObjectStore

__all__ = ["compare_and_delete", "id_time", "new_id", "scan", "utc_iso"]

_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_last = datetime.min.replace(tzinfo=UTC)
_guard = threading.Lock()


def new_id(now: float | None = None) -> str:
    """A unique id that sorts after every id this process made before (``now``: epoch seconds)."""
    global _last
    moment = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
    with _guard:
        if moment <= _last:
            moment = _last + timedelta(microseconds=1)
        _last = moment
    return f"{moment.strftime(_FORMAT)}-{secrets.token_hex(4)}"


def id_time(record_id: str) -> datetime:
    """When an id from :func:`new_id` was made."""
    return datetime.strptime(record_id.split("-", 1)[0], _FORMAT).replace(tzinfo=UTC)


def utc_iso(epoch: float) -> str:
    """ISO 8601 UTC text for an epoch time, to the millisecond: ``2026-11-24T21:50:12.483Z``."""
    text = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


@asynccontextmanager
async def scan(store: ObjectStore, namespace: str, prefix: str = "", *, limit: int | None = None,
               after: str | None = None) -> AsyncIterator[AsyncIterator[tuple[str, Any]]]:
    """``store.items(...)``, closed on exit even when the caller stops early.

    Leaving an ``async for`` with ``break`` leaves the backend's generator suspended until garbage
    collection; closing it at once returns its connection or thread promptly.
    """
    entries = store.items(namespace, prefix, limit=limit, after=after)
    try:
        yield entries
    finally:
        aclose = getattr(entries, "aclose", None)
        if aclose is not None:
            await aclose()


async def compare_and_delete(store: ObjectStore, namespace: str, key: str, expected: Any) -> bool:
    """Remove ``key`` only if it still holds ``expected``; ``True`` if this call removed it.

    The protocol has no conditional delete, so the value is swapped for a tombstone that expired a
    day ago (a negative ``ttl``, so that replicas whose clocks differ a little agree too): it reads as
    absent from then on, ``put_if_absent`` may reuse the key, and the row is purged with the other
    expired ones.
    """
    return await store.compare_and_set(namespace, key, expected, {"$deleted": True}, ttl=-_DAY)


_DAY = 86400.0

"""Identifiers, timestamps and small store idioms shared by the helpers.

Dead letters, inbox deliveries and job runs are keyed by ids that sort by creation time, so that
:meth:`ObjectStore.items` (key order) lists them oldest first without an index of their own.
An id reads ``20261124T215012.483920Z-1f3a9c0d``: UTC time to the microsecond, then 32 random bits
so that ids from different processes never clash. Within one process ids are strictly increasing
even when the clock stands still or steps back.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from runtime.store.base import ObjectStore

__all__ = ["compare_and_delete", "id_time", "new_id", "scan", "utc_iso"]

_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_last = 0  # microseconds since the epoch of the newest id made
_guard = threading.Lock()
#: The formatted second of the newest id and ISO time: consecutive calls mostly fall in the same
#: second, and formatting a date is most of what these functions cost (the execution history
#: makes an id and two times per execution).
_id_second: tuple[int, str] = (-1, "")
_iso_second: tuple[int, str] = (-1, "")


def _microseconds(epoch: float) -> int:
    """Epoch seconds as whole microseconds, rounded as :meth:`datetime.fromtimestamp` does."""
    fraction, whole = math.modf(epoch)  # as datetime does: the fraction alone is rounded
    return int(whole) * 1_000_000 + round(fraction * 1_000_000)


def new_id(now: float | None = None) -> str:
    """A unique id that sorts after every id this process made before (``now``: epoch seconds)."""
    global _last, _id_second
    moment = time.time_ns() // 1000 if now is None else _microseconds(now)
    with _guard:
        if moment <= _last:
            moment = _last + 1
        _last = moment
    seconds, micros = divmod(moment, 1_000_000)
    cached, text = _id_second
    if cached != seconds:
        text = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
        _id_second = (seconds, text)
    return f"{text}.{micros:06d}Z-{secrets.token_hex(4)}"


def id_time(record_id: str) -> datetime:
    """When an id from :func:`new_id` was made."""
    return datetime.strptime(record_id.split("-", 1)[0], _FORMAT).replace(tzinfo=UTC)


def utc_iso(epoch: float) -> str:
    """ISO 8601 UTC text for an epoch time, to the millisecond: ``2026-11-24T21:50:12.483Z``."""
    global _iso_second
    seconds, micros = divmod(_microseconds(epoch), 1_000_000)
    cached, text = _iso_second
    if cached != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _iso_second = (seconds, text)
    return f"{text}.{micros // 1000:03d}Z"


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

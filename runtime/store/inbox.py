"""A durable inbox for webhook deliveries: accept fast, process later, at least once, in order.

A webhook endpoint answers the sender as soon as :meth:`Inbox.put` returns, and the flow works
through :meth:`Inbox.pending` at its own pace. Senders redeliver (QuickBooks does, whenever it
misses a timely 200), so every delivery id is remembered: while the item is pending, and for
``retention`` seconds after it was completed; a redelivery inside that window is recognised and
dropped.

Two namespaces per inbox: ``inbox:<name>`` holds the pending items keyed by arrival id (key order is
arrival order) and ``inbox-seen:<name>`` maps each delivery id to its arrival id. ``put`` writes the
item before the "seen" mark, so a crash between the two can at worst let a redelivery in twice (at
least once), never lose a delivery that was acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.store.base import ObjectStore
from runtime.store.ids import new_id, scan, utc_iso

__all__ = ["DEFAULT_RETENTION", "Inbox", "InboxItem"]

#: How long a completed delivery id is remembered (seconds).
DEFAULT_RETENTION = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class InboxItem:
    """A pending delivery: the sender's id, its payload, and how it has fared so far."""

    id: str
    payload: Any
    received_at: str
    attempts: int = 0
    last_error: dict[str, Any] | None = None
    seq: str = ""


class Inbox:
    """One named inbox (one per webhook source)."""

    def __init__(self, store: ObjectStore, name: str, *, retention: float = DEFAULT_RETENTION,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.name = name
        self.retention = retention
        self.clock = clock
        self._queue = f"inbox:{name}"
        self._seen = f"inbox-seen:{name}"

    async def put(self, item_id: str, payload: Any) -> bool:
        """Accept a delivery; ``False`` if this id is pending or was completed within retention."""
        if await self.store.get(self._seen, item_id) is not None:
            return False
        now = self.clock()
        seq = new_id(now)
        await self.store.put(self._queue, seq, {"id": item_id, "payload": payload,
                                                "received_at": utc_iso(now), "attempts": 0,
                                                "last_error": None})
        if await self.store.put_if_absent(self._seen, item_id, {"seq": seq, "state": "pending"}):
            return True
        await self.store.delete(self._queue, seq)  # a concurrent redelivery won the race
        return False

    async def pending(self, limit: int = 100) -> list[InboxItem]:
        """Up to ``limit`` items not yet completed, in arrival order."""
        items: list[InboxItem] = []
        async with scan(self.store, self._queue, limit=limit) as entries:
            async for seq, data in entries:
                items.append(InboxItem(id=data["id"], payload=data["payload"],
                                       received_at=data["received_at"],
                                       attempts=data.get("attempts", 0),
                                       last_error=data.get("last_error"), seq=seq))
        return items

    async def count(self) -> int:
        """How many items are pending."""
        return await self.store.count(self._queue)

    async def complete(self, item_id: str) -> bool:
        """Done with an item: drop it, and remember its id for ``retention``; ``False`` if unknown."""
        mark = await self.store.get(self._seen, item_id)
        if mark is None or mark.get("state") != "pending":
            return False
        # Queue entry first: a crash in between leaves a "pending" mark that still stops
        # redeliveries, never a completed item that shows up as pending again.
        await self.store.delete(self._queue, mark["seq"])
        await self.store.put(self._seen, item_id,
                             {"seq": mark["seq"], "state": "done",
                              "completed_at": utc_iso(self.clock())}, ttl=self.retention)
        return True

    async def fail(self, item_id: str, error: dict[str, Any]) -> int:
        """Count a failed attempt; the item stays pending, in its place. Returns the attempts so far.

        The caller decides when to give up (dead-letter it, then ``complete``). ``0`` means the
        item is not pending.
        """
        mark = await self.store.get(self._seen, item_id)
        if mark is None or mark.get("state") != "pending":
            return 0
        while True:
            current = await self.store.get(self._queue, mark["seq"])
            if current is None:
                return 0
            updated = {**current, "attempts": current.get("attempts", 0) + 1, "last_error": error}
            if await self.store.compare_and_set(self._queue, mark["seq"], current, updated):
                return int(updated["attempts"])

    async def seen(self, item_id: str) -> bool:
        """Whether a delivery id is pending or was completed within retention."""
        return await self.store.get(self._seen, item_id) is not None

"""Webhook inbox: durable, in arrival order, redeliveries recognised."""

from __future__ import annotations

import anyio
import pytest

from runtime.store import Inbox, ObjectStore

from .conftest import Backend, FakeClock

pytestmark = pytest.mark.anyio


async def test_pending_in_arrival_order_and_complete(store: ObjectStore, clock: FakeClock) -> None:
    """Items come out in the order they arrived; completed ones leave the queue."""
    inbox = Inbox(store, "quickbooks", clock=clock)
    for n in range(5):
        assert await inbox.put(f"evt-{9 - n}", {"n": n}) is True
    pending = await inbox.pending()
    assert [item.payload["n"] for item in pending] == [0, 1, 2, 3, 4]
    assert [item.id for item in await inbox.pending(limit=2)] == ["evt-9", "evt-8"]
    assert await inbox.complete("evt-9") is True
    assert await inbox.complete("evt-9") is False
    assert [item.id for item in await inbox.pending()] == ["evt-8", "evt-7", "evt-6", "evt-5"]
    assert await inbox.count() == 4


async def test_redelivery_is_dropped_while_pending_and_after_completion(
        store: ObjectStore, clock: FakeClock) -> None:
    """The same delivery id is accepted once, until the retention window has passed."""
    inbox = Inbox(store, "quickbooks", retention=3600, clock=clock)
    assert await inbox.put("evt-1", {"v": 1}) is True
    assert await inbox.put("evt-1", {"v": 1}) is False
    await inbox.complete("evt-1")
    clock.advance(3000)
    assert await inbox.put("evt-1", {"v": 1}) is False
    assert await inbox.pending() == []
    clock.advance(601)
    assert await inbox.put("evt-1", {"v": 1}) is True


async def test_concurrent_redeliveries_queue_one_item(store: ObjectStore) -> None:
    """A burst of the same delivery (sender retries racing) leaves exactly one pending item."""
    inbox = Inbox(store, "burst")
    accepted: list[bool] = []

    async def deliver() -> None:
        accepted.append(await inbox.put("evt-dup", {"v": 1}))

    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(deliver)
    assert accepted.count(True) == 1
    assert [item.id for item in await inbox.pending()] == ["evt-dup"]


async def test_failed_item_stays_pending_with_attempts(store: ObjectStore) -> None:
    """A failure is counted and kept with its error; the item keeps its place in line."""
    inbox = Inbox(store, "quickbooks")
    await inbox.put("a", 1)
    await inbox.put("b", 2)
    assert await inbox.fail("a", {"type": "HTTP:TIMEOUT"}) == 1
    assert await inbox.fail("a", {"type": "HTTP:TIMEOUT", "message": "again"}) == 2
    first, second = await inbox.pending()
    assert (first.id, first.attempts, first.last_error["message"]) == ("a", 2, "again")
    assert (second.id, second.attempts) == ("b", 0)
    assert await inbox.fail("unknown", {}) == 0


async def test_inbox_survives_a_restart(backend: Backend) -> None:
    """Accepted deliveries are still pending after a restart, and still deduplicated."""
    first = backend.open()
    await Inbox(first, "qb").put("evt-1", {"v": 1})
    await first.aclose()
    inbox = Inbox(backend.open(), "qb")
    assert [item.payload for item in await inbox.pending()] == [{"v": 1}]
    assert await inbox.put("evt-1", {"v": 1}) is False


async def test_inboxes_are_separate(store: ObjectStore) -> None:
    """Two named inboxes neither share items nor deduplicate each other's ids."""
    assert await Inbox(store, "one").put("evt", 1) is True
    assert await Inbox(store, "two").put("evt", 2) is True
    assert [item.payload for item in await Inbox(store, "two").pending()] == [2]

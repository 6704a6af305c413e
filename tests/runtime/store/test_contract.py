"""The ObjectStore contract, on every backend: what flows, sources and helpers rely on."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import anyio
import pytest

from runtime.store import ObjectStore

from .conftest import Backend, FakeClock

pytestmark = pytest.mark.anyio


async def test_get_returns_what_put_stored(store: ObjectStore) -> None:
    """A value reads back equal, and a missing key reads as None."""
    await store.put("orders", "o-1", {"id": "o-1", "lines": [1, 2], "paid": False})
    assert await store.get("orders", "o-1") == {"id": "o-1", "lines": [1, 2], "paid": False}
    assert await store.get("orders", "o-2") is None


async def test_put_replaces_and_namespaces_are_separate(store: ObjectStore) -> None:
    """The same key in two namespaces holds two values; a second put replaces the first."""
    await store.put("a", "k", 1)
    await store.put("b", "k", 2)
    await store.put("a", "k", 3)
    assert (await store.get("a", "k"), await store.get("b", "k")) == (3, 2)


async def test_money_and_times_round_trip_exactly(store: ObjectStore) -> None:
    """Decimal amounts stay Decimal to the last digit; datetimes keep their zone."""
    value = {"amount": Decimal("1234.10"), "at": datetime(2026, 11, 24, 21, 50, 12, tzinfo=UTC),
             "due": date(2026, 12, 1), "raw": b"\x00\xff"}
    await store.put("invoices", "i-1", value)
    back = await store.get("invoices", "i-1")
    assert back == value
    assert str(back["amount"]) == "1234.10"
    assert back["at"].tzinfo is not None


async def test_ttl_expiry_reads_as_absent(store: ObjectStore, clock: FakeClock) -> None:
    """An entry is there until its ttl passes, then gone from get, items and count."""
    await store.put("tokens", "t", "abc", ttl=60)
    await store.put("tokens", "u", "keep")
    clock.advance(59)
    assert await store.get("tokens", "t") == "abc"
    clock.advance(2)
    assert await store.get("tokens", "t") is None
    assert [key async for key, _ in store.items("tokens")] == ["u"]
    assert await store.count("tokens") == 1
    assert await store.delete("tokens", "t") is False


async def test_put_if_absent_creates_once(store: ObjectStore, clock: FakeClock) -> None:
    """Only the first put_if_absent wins, until the winner's ttl runs out."""
    assert await store.put_if_absent("fires", "slot", "first", ttl=10) is True
    assert await store.put_if_absent("fires", "slot", "second", ttl=10) is False
    assert await store.get("fires", "slot") == "first"
    clock.advance(11)
    assert await store.put_if_absent("fires", "slot", "third") is True
    assert await store.get("fires", "slot") == "third"


async def test_put_if_absent_race_has_exactly_one_winner(store: ObjectStore) -> None:
    """200 concurrent claims of one key: exactly one succeeds, and its value is stored."""
    winners: list[int] = []

    async def claim(n: int) -> None:
        if await store.put_if_absent("claims", "job", n):
            winners.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(200):
            tg.start_soon(claim, n)
    assert len(winners) == 1
    assert await store.get("claims", "job") == winners[0]


async def test_put_if_absent_race_across_store_instances(backend: Backend) -> None:
    """Two store instances (as two processes would have) racing: still exactly one winner."""
    first, second = backend.open(), backend.open()
    results: list[bool] = []

    async def claim(store: ObjectStore, n: int) -> None:
        results.append(await store.put_if_absent("claims", "k", n))

    async with anyio.create_task_group() as tg:
        for n in range(50):
            tg.start_soon(claim, first if n % 2 else second, n)
    assert results.count(True) == 1


async def test_compare_and_set(store: ObjectStore, clock: FakeClock) -> None:
    """Swaps only from the expected value; None expects absence; expired counts as absent."""
    assert await store.compare_and_set("cas", "k", None, {"v": 1}) is True
    assert await store.compare_and_set("cas", "k", None, {"v": 9}) is False
    assert await store.compare_and_set("cas", "k", {"v": 2}, {"v": 3}) is False
    assert await store.compare_and_set("cas", "k", {"v": 1}, {"v": 2}, ttl=5) is True
    assert await store.get("cas", "k") == {"v": 2}
    clock.advance(6)
    assert await store.compare_and_set("cas", "k", {"v": 2}, {"v": 3}) is False
    assert await store.compare_and_set("cas", "k", None, {"v": 4}) is True
    assert await store.get("cas", "k") == {"v": 4}


async def test_compare_and_set_compares_values_not_text(store: ObjectStore) -> None:
    """Key order in a dict and tuples versus lists do not matter; Decimal compares by value."""
    await store.put("cas", "k", {"a": 1, "b": [1, 2], "amount": Decimal("10.50")})
    assert await store.compare_and_set("cas", "k", {"amount": Decimal("10.50"), "b": (1, 2), "a": 1},
                                       "next") is True
    assert await store.get("cas", "k") == "next"


async def test_concurrent_compare_and_set_loses_no_increment(store: ObjectStore) -> None:
    """Read-modify-write loops over compare_and_set never lose an update."""
    await store.put("counters", "c", 0)

    async def increment() -> None:
        while True:
            current = await store.get("counters", "c")
            if await store.compare_and_set("counters", "c", current, current + 1):
                return

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(increment)
    assert await store.get("counters", "c") == 50


async def test_delete_reports_whether_something_was_there(store: ObjectStore) -> None:
    """Delete answers True once, then False."""
    await store.put("n", "k", 1)
    assert await store.delete("n", "k") is True
    assert await store.delete("n", "k") is False
    assert await store.get("n", "k") is None


async def test_items_in_key_order_with_prefix_after_and_limit(store: ObjectStore) -> None:
    """Key order, prefix filter, resume after a key, and a limit, as the helpers page through."""
    for key in ["b/2", "a/1", "b/10", "b/1", "c", "b", "bb"]:
        await store.put("ns", key, key.upper())
    await store.put("other", "b/3", "elsewhere")
    assert [k async for k, _ in store.items("ns")] == ["a/1", "b", "b/1", "b/10", "b/2", "bb", "c"]
    assert [k async for k, _ in store.items("ns", "b/")] == ["b/1", "b/10", "b/2"]
    assert [(k, v) async for k, v in store.items("ns", "b/", after="b/1")] == [("b/10", "B/10"),
                                                                               ("b/2", "B/2")]
    assert [k async for k, _ in store.items("ns", limit=2, after="b")] == ["b/1", "b/10"]
    assert [k async for k, _ in store.items("ns", "b/", after="a")] == ["b/1", "b/10", "b/2"]
    assert [k async for k, _ in store.items("ns", "zz")] == []
    assert await store.count("ns") == 7
    assert await store.count("ns", "b") == 5


async def test_items_pages_through_many_entries(backend: Backend) -> None:
    """More entries than a page, and keys beyond ASCII, come back complete and in code-point order."""
    store = backend.open(page_size=7)
    keys = [f"k{n:03d}" for n in range(50)] + ["kä", "k\U0001f600", "k~"]
    for key in keys:
        await store.put("many", key, key)
    assert [k async for k, _ in store.items("many")] == sorted(keys)
    assert [k async for k, _ in store.items("many", limit=23)] == sorted(keys)[:23]
    assert [k async for k, _ in store.items("many", "k0", after="k020", limit=8)] == [
        f"k{n:03d}" for n in range(21, 29)]


async def test_entries_survive_close_and_reopen(backend: Backend) -> None:
    """What one store instance wrote, a new one (a restarted process) reads."""
    first = backend.open()
    await first.put("source-state", "flow:trigger", {"watermark": "2026-11-24T21:50:12Z"})
    await first.aclose()
    second = backend.open()
    assert await second.get("source-state", "flow:trigger") == {"watermark": "2026-11-24T21:50:12Z"}


async def test_thousand_concurrent_puts_all_land(store: ObjectStore) -> None:
    """A burst of 1,000 concurrent writers: every value is stored, none lost or mixed up."""
    async with anyio.create_task_group() as tg:
        for n in range(1000):
            tg.start_soon(store.put, "burst", f"k{n:04d}", {"n": n})
    assert await store.count("burst") == 1000
    assert await store.get("burst", "k0999") == {"n": 999}


async def test_store_is_an_async_context_manager(backend: Backend) -> None:
    """``async with`` closes the store; using it afterwards fails loudly."""
    async with backend.open() as store:
        await store.put("n", "k", 1)
    with pytest.raises(anyio.ClosedResourceError):
        await store.get("n", "k")

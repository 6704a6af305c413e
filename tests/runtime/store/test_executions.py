"""Execution records: newest first, found by flow, business id and correlation id, bounded per flow."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.store import ObjectStore
from runtime.store.executions import ExecutionFilter, ExecutionHistory, execution_key
from runtime.store.ids import new_id, utc_iso

from .conftest import FakeClock

pytestmark = pytest.mark.anyio


def record(clock: FakeClock, n: int, *, flow: str = "a", outcome: str = "completed",
           ids: list[str] | None = None, letter: str | None = None) -> dict[str, Any]:
    clock.advance(1)
    found: dict[str, Any] = {"id": new_id(clock.now), "flow": flow, "outcome": outcome, "n": n,
                             "correlationId": f"c-{n}", "recordIds": ids or [],
                             "startedAt": utc_iso(clock.now)}
    if letter:
        found["deadLetterId"] = letter
    return found


def test_key_sorts_newest_first_and_maps_back() -> None:
    older, newer = new_id(1_800_000_000.0), new_id(1_800_000_001.0)
    assert execution_key(newer) < execution_key(older)
    assert execution_key(execution_key(older)) == older


async def test_list_filters_and_pages(store: ObjectStore, clock: FakeClock) -> None:
    """Newest first; each filter narrows; ``after`` pages towards older records."""
    history = ExecutionHistory(store)
    records = [record(clock, n, flow="a" if n % 2 else "b", outcome="failed" if n == 3 else "completed",
                      ids=[f"006-{n}", "acct-1"] if n < 4 else [f"006-{n}"]) for n in range(8)]
    await history.add_many(records)
    newest_first = [r["n"] for r in await history.list()]
    assert newest_first == [7, 6, 5, 4, 3, 2, 1, 0]
    assert [r["n"] for r in await history.list(ExecutionFilter(flow="a"))] == [7, 5, 3, 1]
    assert [r["n"] for r in await history.list(ExecutionFilter(outcome="failed"))] == [3]
    assert [r["n"] for r in await history.list(ExecutionFilter(record_id="acct-1"))] == [3, 2, 1, 0]
    assert [r["n"] for r in await history.list(ExecutionFilter(record_id="006-5"))] == [5]
    assert [r["n"] for r in await history.list(ExecutionFilter(correlation_id="c-6"))] == [6]
    assert [r["n"] for r in await history.list(
        ExecutionFilter(since=records[2]["startedAt"], until=records[5]["startedAt"]))] == [5, 4, 3, 2]
    first = await history.list(limit=3)
    second = await history.list(limit=3, after=first[-1]["id"])
    assert [r["n"] for r in first + second] == [7, 6, 5, 4, 3, 2]
    page = await history.list(ExecutionFilter(flow="a"), limit=1, after=records[5]["id"])
    assert [r["n"] for r in page] == [3]
    assert (await history.get(records[4]["id"]) or {})["n"] == 4
    assert await history.get(new_id()) is None
    assert await history.count() == 8 and await history.count("a") == 4


async def test_prune_keeps_the_newest_per_flow(store: ObjectStore, clock: FakeClock) -> None:
    history = ExecutionHistory(store, max_per_flow=2)
    await history.add_many([record(clock, n, flow="a" if n < 5 else "b", ids=[f"x-{n}"])
                            for n in range(7)])
    assert await history.prune(["a", "b"]) == 3
    assert [r["n"] for r in await history.list(ExecutionFilter(flow="a"))] == [4, 3]
    assert [r["n"] for r in await history.list()] == [6, 5, 4, 3]
    assert await history.list(ExecutionFilter(record_id="x-0")) == []
    assert await history.prune(["a", "b"]) == 0


async def test_records_expire_after_the_retention_age(store: ObjectStore, clock: FakeClock) -> None:
    history = ExecutionHistory(store, retention=3600)
    await history.add_many([record(clock, 1, ids=["x"])])
    clock.advance(3601)
    assert await history.list() == []
    assert await history.list(ExecutionFilter(record_id="x")) == []


async def test_mark_retried_links_the_replay(store: ObjectStore, clock: FakeClock) -> None:
    history = ExecutionHistory(store)
    failed = record(clock, 1, outcome="dead-lettered", letter="L-1")
    await history.add_many([failed])
    assert await history.mark_retried("L-1", "replay-id")
    found = await history.get(failed["id"])
    assert found is not None and (found["outcome"], found["retriedBy"]) == ("retried", "replay-id")
    assert not await history.mark_retried("L-unknown", "x")


async def test_put_many_writes_every_entry(store: ObjectStore) -> None:
    await store.put_many([("ns", "k1", {"a": 1}), ("ns2", "k2", [1, 2])], ttl=60)
    await store.put_many([])
    assert await store.get("ns", "k1") == {"a": 1} and await store.get("ns2", "k2") == [1, 2]

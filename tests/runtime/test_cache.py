"""Results of reading steps reused with ``cache:``: once per key and duration, never a failure."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runtime.cache import ResultCache, cache_key
from runtime.errors import SpliceError
from runtime.message import Event

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_result_is_reused_until_it_expires() -> None:
    clock, loads = Clock(), []

    async def load() -> dict[str, Any]:
        loads.append(clock.now)
        return {"Id": "42", "loadedAt": clock.now}

    cache = ResultCache(clock=clock)
    key = cache_key("qb", "quickbooks.query", {"query": "select * from Term"})
    first = await cache.get(key, 60, load)
    clock.now = 59.0
    assert await cache.get(key, 60, load) == first
    clock.now = 60.0
    assert (await cache.get(key, 60, load))["loadedAt"] == 60.0
    assert loads == [0.0, 60.0]


async def test_each_caller_gets_its_own_copy() -> None:
    async def load() -> list[dict[str, str]]:
        return [{"Id": "1"}]

    cache = ResultCache()
    mine = await cache.get("k", 60, load)
    mine[0]["Id"] = "changed by one message"
    assert await cache.get("k", 60, load) == [{"Id": "1"}]


async def test_concurrent_misses_make_one_call_and_failures_are_not_kept() -> None:
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await anyio.sleep(0.01)
        if calls == 1:
            raise SpliceError("QuickBooks is down", error_type="QUICKBOOKS:SERVER_ERROR")
        return calls

    cache = ResultCache()
    results: list[Any] = []

    async def one() -> None:
        try:
            results.append(await cache.get("k", 60, load))
        except SpliceError as error:
            results.append(error.error_type)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
    # The first load failed for its caller only; the next caller loaded once for the other three.
    assert sorted(map(str, results)) == ["2", "2", "2", "2", "QUICKBOOKS:SERVER_ERROR"]
    assert calls == 2


async def test_the_oldest_entries_go_first_beyond_the_bound() -> None:
    async def load() -> str:
        return "v"

    cache = ResultCache(max_entries=2)
    for key in ("a", "b", "c"):
        await cache.get(key, 60, load)
    assert cache.misses == 3
    await cache.get("c", 60, load)
    await cache.get("a", 60, load)
    assert (cache.hits, cache.misses) == (1, 4)


async def test_a_cached_step_calls_its_operation_once_per_parameters(start: Any, recorder: Any) -> None:
    """Ten messages at once, two distinct keys: two calls; the flow sees the same result."""
    flow = """
    flow: lookup
    max-concurrency: 10
    steps:
      - test.lookup: { key: "#[payload.term]" }
        target: term
        cache: 10m
      - transform: "$vars.term.key"
    """
    async with start({"lookup.yaml": flow}) as h:
        outcomes: list[Any] = []

        async def one(i: int) -> None:
            outcomes.append(await h.runtime.engine.run(
                "lookup", Event(payload={"term": "Net 30" if i % 2 else "Net 15"})))

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(one, i)
    assert sorted(o.message.payload for o in outcomes) == ["Net 15"] * 5 + ["Net 30"] * 5
    assert sorted(call["key"] for call in recorder.of("lookup")) == ["Net 15", "Net 30"]

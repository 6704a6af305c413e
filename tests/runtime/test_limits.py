"""In-process budgets: weights per acquisition, weights beyond the bucket, an awaited pause."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from runtime import BudgetFactory, RateLimit, local_budget
from runtime.limits import LocalInFlight, TokenBucket, portions

pytestmark = pytest.mark.anyio


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_weight_larger_than_the_bucket_is_spent_in_portions_it_can_grant() -> None:
    """A batch of 30 items metered per item on a bucket of 10: three acquisitions of 10."""
    assert portions(30, 10) == [10, 10, 10]
    assert portions(25, 10) == [10, 10, 5]
    assert portions(3, 10) == [3]
    assert portions(0, 10) == []


async def test_a_slot_spends_its_weight() -> None:
    """``slot(tokens=n)`` takes n tokens: a bucket of 10 has 4 left after weights 2 and 4."""
    clock = FakeClock()
    limit = RateLimit(1, 3600.0, max_concurrent=2, burst=10)
    limit.bucket = bucket = TokenBucket(1, 3600.0, burst=10, clock=clock)
    async with limit.slot(tokens=2):
        pass
    async with limit.slot(tokens=4):
        pass
    bucket._refill()
    assert bucket._tokens == pytest.approx(4)


async def test_an_awaited_pause_stops_the_budget() -> None:
    """``RateLimit.pause`` (a client's ``on_throttle``) spends the bucket below zero."""
    clock = FakeClock()
    limit = RateLimit.combine(TokenBucket(10, 1.0, burst=10, clock=clock))
    await limit.pause(2.0)
    bucket = limit.bucket
    assert isinstance(bucket, TokenBucket)
    bucket._refill()
    assert bucket._tokens == pytest.approx(-20)
    clock.now += 2.5  # the pause is over: five tokens have come back
    with anyio.fail_after(5):
        await limit.acquire()


def test_the_local_factory_makes_budgets_of_this_process() -> None:
    """``local_budget`` answers like ``ConnectionContext.budget``, with a plain ``RateLimit``."""
    factory: BudgetFactory = local_budget
    limit = factory("quickbooks:realm", 20, 60.0, burst=5, max_concurrent=3)
    assert isinstance(limit.bucket, TokenBucket)
    assert limit.bucket.capacity == 5 and limit.bucket.interval == 3.0


async def test_a_one_token_request_does_not_wait_behind_a_batch_waiting_for_its_tokens() -> None:
    """A batch of 10 waits for its tokens on an empty bucket; reads asked after it go first, up to
    the bucket's capacity, then the batch gets its turn: reads cannot starve it."""
    bucket = TokenBucket(100, 1.0, burst=10)  # a token every 10 ms, at most 10 saved
    await bucket.acquire(10)  # empty
    order: list[str] = []
    heavy_waiting = anyio.Event()

    async def heavy() -> None:
        heavy_waiting.set()
        await bucket.acquire(10)
        order.append("batch")

    async def light(n: int) -> None:
        await bucket.acquire(1)
        order.append(f"read {n}")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(heavy)
            await heavy_waiting.wait()
            await anyio.lowlevel.checkpoint()
            for n in range(15):
                tg.start_soon(light, n)
    assert order.index("batch") == 10, order
    assert [o for o in order if o != "batch"] == [f"read {n}" for n in range(15)]


async def test_batches_waiting_for_their_tokens_leave_in_flight_slots_to_reads() -> None:
    """Two slots in flight and two batches of 5 waiting for their tokens: one batch waits holding
    a slot, the other without one, so a read asked after them takes the free slot and goes first."""
    limit = RateLimit(50, 1.0, max_concurrent=2, burst=5)
    await limit.acquire(5)  # empty: each batch must wait about 100 ms
    order: list[str] = []

    async def batch(name: str) -> None:
        async with limit.slot(tokens=5):
            order.append(name)

    async def read() -> None:
        async with limit.slot():
            order.append("read")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(batch, "first batch")
            tg.start_soon(batch, "second batch")
            # Until one batch holds a slot and the other waits for its turn without one.
            while limit._heavy_turn.statistics().tasks_waiting < 1:  # noqa: ASYNC110 - no event for it
                await anyio.sleep(0.001)
            assert isinstance(limit.concurrency, LocalInFlight)
            assert limit.concurrency.borrowed_tokens == 1
            tg.start_soon(read)
    assert order == ["read", "first batch", "second batch"]

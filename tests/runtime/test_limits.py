"""In-process budgets: weights per acquisition, weights beyond the bucket, an awaited pause."""

from __future__ import annotations

import anyio
import pytest

from runtime import BudgetFactory, RateLimit, local_budget
from runtime.limits import TokenBucket, portions

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

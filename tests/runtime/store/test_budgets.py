"""API budgets: one budget for every replica on a PostgreSQL store, this process's own otherwise.

Replicas are stores of their own (own connection pools) on one schema, as two ``splice serve``
processes are. Times are the database's grant times (the bucket's own clock), so the checks of
every rolling window do not depend on how fast this machine is.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from runtime import budgets
from runtime.budgets import StoreInFlight, StoreTokenBucket, open_budget
from runtime.errors import SpliceError
from runtime.limits import RateLimit, TokenBucket
from runtime.store import ObjectStore, open_store
from runtime.store.base import StoreUnavailableError
from runtime.store.budgets import BudgetTables, TakeResult, budget_tables
from runtime.transports import RateLimitTransport, RetryOptions, RetryTransport
from tests.runtime.store.conftest import Backend

pytestmark = pytest.mark.anyio


def _most_in_any_window(grants: list[tuple[float, float]], period: float) -> float:
    """The largest weight granted within any window of ``period`` seconds."""
    grants = sorted(grants)
    most = 0.0
    for i, (start, _) in enumerate(grants):
        most = max(most, sum(w for t, w in grants[i:] if t < start + period - 1e-6))
    return most


def _replicas(postgres_url: str, pg_schema: str, count: int = 2) -> list[ObjectStore]:
    return [open_store(f"{postgres_url}?schema={pg_schema}") for _ in range(count)]


def _shared_bucket(limit: RateLimit) -> StoreTokenBucket:
    assert isinstance(limit.bucket, StoreTokenBucket)
    return limit.bucket


# -- every backend -----------------------------------------------------------------------------


async def test_a_budget_spends_weights_and_bounds_requests_in_flight(backend: Backend) -> None:
    """On SQLite the budget is this process's, on PostgreSQL the store's: either way a slot spends
    its weight, and no more than ``max_concurrent`` requests are in flight."""
    store = backend.open()
    limit = open_budget(store, "contract", 1, 3600.0, burst=12, max_concurrent=2)
    held = most = 0

    async def request(weight: int) -> None:
        nonlocal held, most
        async with limit.slot(tokens=weight):
            held += 1
            most = max(most, held)
            await anyio.sleep(0.01)
            held -= 1

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(8):  # weights 1 and 2: the burst of 12 exactly
                tg.start_soon(request, 1 + i % 2)
    assert 1 <= most <= 2
    bucket = limit.bucket
    if isinstance(bucket, StoreTokenBucket):
        left = await bucket.tables.take("contract", 1.0, bucket.capacity, bucket.interval)
        assert left.granted_at is None and left.wait > 3000
    else:
        assert isinstance(bucket, TokenBucket)
        bucket._refill()
        assert bucket._tokens < 1


async def test_a_budget_on_sqlite_is_kept_in_the_process(backend: Backend) -> None:
    """SQLite serves one process: its budgets are plain in-process rate limits."""
    store = backend.open()
    limit = open_budget(store, "local", 10, 1.0, max_concurrent=3)
    if backend.name == "sqlite":
        assert budget_tables(store) is None
        assert isinstance(limit.bucket, TokenBucket)
    else:
        assert isinstance(limit.bucket, StoreTokenBucket)
        assert isinstance(limit.concurrency, StoreInFlight)
    assert isinstance(open_budget(None, "none", 10).bucket, TokenBucket)


# -- replicas on PostgreSQL --------------------------------------------------------------------


@pytest.mark.postgres
async def test_two_replicas_never_pass_the_limit_in_any_rolling_window(postgres_url: str,
                                                                       pg_schema: str) -> None:
    """20 per second (a burst of 5 plus 15 a second), spent by two replicas at once with weights
    1 and 2: no window of one second ever holds more than 20."""
    one, other = _replicas(postgres_url, pg_schema)
    async with one, other:
        buckets = [_shared_bucket(open_budget(s, "realm", 15, 1.0, burst=5)) for s in (one, other)]
        grants: list[tuple[float, float]] = []
        by_replica = [0, 0]

        async def spend(replica: int, weight: int) -> None:
            for _ in range(6):
                grants.append((await buckets[replica].take(weight), weight))
                by_replica[replica] += weight

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for replica in (0, 1):
                    for weight in (1, 1, 2):
                        tg.start_soon(spend, replica, weight)
    assert sum(w for _, w in grants) == 48 and all(by_replica)
    assert _most_in_any_window(grants, 1.0) <= 20
    # The burst alone is not the limit: the grants took their refill time, on one clock.
    assert max(t for t, _ in grants) - min(t for t, _ in grants) >= (48 - 5) / 15 - 0.01


@pytest.mark.postgres
async def test_requests_in_flight_never_exceed_the_limit_across_replicas(postgres_url: str,
                                                                         pg_schema: str) -> None:
    """Three slots shared by two replicas with six callers each: never more than three held."""
    one, other = _replicas(postgres_url, pg_schema)
    async with one, other:
        limits = [open_budget(s, "org", 1000, 1.0, max_concurrent=3) for s in (one, other)]
        held = most = 0

        async def request(limit: RateLimit) -> None:
            nonlocal held, most
            for _ in range(3):
                async with limit.slot():
                    held += 1
                    most = max(most, held)
                    await anyio.sleep(0.01)
                    held -= 1

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for limit in limits:
                    for _ in range(6):
                        tg.start_soon(request, limit)
        tables = budget_tables(one)
        assert tables is not None
        assert await tables.slots_held("org") == 0
    assert 1 <= most <= 3


@pytest.mark.postgres
async def test_a_slot_of_a_dead_replica_frees_itself_when_its_lease_ends(postgres_url: str,
                                                                         pg_schema: str) -> None:
    """A replica killed mid-request never frees its slot; the slot's lease does."""
    dead, alive = _replicas(postgres_url, pg_schema)
    async with dead, alive:
        tables = budget_tables(dead)
        assert tables is not None
        assert await tables.take_slot("realm", 1, "killed-replica", 0.5) == 0
        assert await tables.take_slot("realm", 1, "someone-else", 0.5) is None  # held, not expired
        limit = open_budget(alive, "realm", 1000, 1.0, max_concurrent=1)
        with anyio.fail_after(20):
            async with limit.slot():
                assert await tables.slots_held("realm") == 1
                # The dead holder's late release does not free the slot its successor holds.
                await tables.release_slot("realm", 0, "killed-replica")
                assert await tables.slots_held("realm") == 1
        assert await tables.slots_held("realm") == 0


@pytest.mark.postgres
async def test_a_slot_is_renewed_while_its_request_runs(postgres_url: str, pg_schema: str) -> None:
    """A request slower than the slot's lease keeps its slot: its holder renews it meanwhile."""
    (store,) = _replicas(postgres_url, pg_schema, 1)
    async with store:
        tables = budget_tables(store)
        assert tables is not None
        limit = open_budget(store, "slow", 1000, 1.0, max_concurrent=1, slot_lease=0.6)
        with anyio.fail_after(20):
            async with limit.slot():
                await anyio.sleep(1.5)  # two and a half leases
                assert await tables.slots_held("slow") == 1
                assert await tables.take_slot("slow", 1, "another-replica", 0.6) is None
        assert await tables.slots_held("slow") == 0


@pytest.mark.postgres
async def test_a_take_asked_again_after_a_lost_answer_takes_no_second_slot(
        postgres_url: str, pg_schema: str) -> None:
    """The same holder asking again gets the slot its first attempt took."""
    (store,) = _replicas(postgres_url, pg_schema, 1)
    async with store:
        tables = budget_tables(store)
        assert tables is not None
        first = await tables.take_slot("realm", 3, "holder-1", 10.0)
        assert await tables.take_slot("realm", 3, "holder-1", 10.0) == first
        assert await tables.slots_held("realm") == 1


@pytest.mark.postgres
async def test_a_pause_after_a_429_stops_every_replica(postgres_url: str, pg_schema: str) -> None:
    """Replica A meets a 429: before its transport even waits to retry, replica B can take no
    token from the budget; both go on once the pause is over."""
    one, other = _replicas(postgres_url, pg_schema)
    async with one, other:
        a, b = (open_budget(s, "realm", 100, 1.0, burst=10, max_concurrent=5) for s in (one, other))
        b_bucket = _shared_bucket(b)
        seen_by_b: list[TakeResult] = []
        answers = iter([httpx.Response(429), httpx.Response(200)])

        def api(request: httpx.Request) -> httpx.Response:
            return next(answers)

        async def retry_sleep(seconds: float) -> None:
            seen_by_b.append(await b_bucket.tables.take("realm", 1, b_bucket.capacity,
                                                        b_bucket.interval))

        transport = RetryTransport(RateLimitTransport(httpx.MockTransport(api), a),
                                   RetryOptions(attempts=2, initial_delay=1.0),
                                   sleep=retry_sleep, on_throttle=a.pause)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            with anyio.fail_after(30):
                assert (await client.get("/thing")).status_code == 200
                await b.acquire()
    assert len(seen_by_b) == 1
    assert seen_by_b[0].granted_at is None and seen_by_b[0].wait > 0.5


# -- a store that does not answer --------------------------------------------------------------


class _FailingTables:
    """Budget tables whose store fails ``failures`` times, then grants."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.granted = 0

    async def take(self, key: str, tokens: float, capacity: float, interval: float) -> TakeResult:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailableError("connection refused")
        self.granted += 1
        return TakeResult(1.0, 0.0)


def _bucket(tables: Any) -> StoreTokenBucket:
    return StoreTokenBucket(tables, "realm", 10, 1.0)  # a stand-in for BudgetTables


async def test_a_store_blip_is_ridden_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two failed attempts, then the store answers: the token is granted."""
    monkeypatch.setattr(budgets, "OUTAGE_WAIT", 5.0)
    tables = _FailingTables(2)
    with anyio.fail_after(10):
        await _bucket(tables).acquire()
    assert tables.granted == 1


async def test_a_budget_never_spends_alone_while_the_store_is_down(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the outage wait the acquisition fails, typed and retryable; nothing was granted."""
    monkeypatch.setattr(budgets, "OUTAGE_WAIT", 0.3)
    tables = _FailingTables(10_000)
    with anyio.fail_after(10), pytest.raises(SpliceError) as caught:
        await _bucket(tables).acquire()
    assert caught.value.error_type == "STORE:UNAVAILABLE" and caught.value.retryable
    assert tables.granted == 0


class _BlippingSlots:
    """Slot tables whose store fails the releases it is told to, then answers again."""

    def __init__(self, failed_releases: int) -> None:
        self.failed_releases = failed_releases
        self.held: dict[int, str] = {}

    async def take_slot(self, key: str, limit: int, holder: str, lease: float) -> int | None:
        free = [slot for slot in range(limit) if slot not in self.held]
        if not free:
            return None
        self.held[free[0]] = holder
        return free[0]

    async def release_slot(self, key: str, slot: int, holder: str) -> None:
        if self.failed_releases > 0:
            self.failed_releases -= 1
            raise StoreUnavailableError("connection reset")
        if self.held.get(slot) == holder:
            del self.held[slot]


async def test_a_slot_the_store_could_not_free_is_freed_before_the_next_take(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A release lost in an outage is not left to the lease: the next request frees it first."""
    monkeypatch.setattr(budgets, "OUTAGE_WAIT", 0.2)
    tables = _BlippingSlots(failed_releases=100)
    slots = StoreInFlight(tables, "realm", 1)  # type: ignore[arg-type]
    async with slots.hold():
        pass
    assert len(tables.held) == 1  # the store never heard of the release
    tables.failed_releases = 0
    with anyio.fail_after(10):
        async with slots.hold():
            assert len(tables.held) == 1
    assert tables.held == {}


def test_budget_tables_look_through_a_metered_store() -> None:
    """The runtime meters the store it opens; the budget still finds PostgreSQL behind it."""
    from runtime.metrics import MeteredStore, RuntimeMetrics

    store = open_store("postgresql://nobody@127.0.0.1:1/none")
    assert isinstance(budget_tables(MeteredStore.wrap(store, RuntimeMetrics())), BudgetTables)
    assert budget_tables(MeteredStore.wrap(open_store("memory://"), RuntimeMetrics())) is None

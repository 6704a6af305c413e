"""The PostgreSQL work queue: what replicas rely on when they share the executions of exclusive
triggers. Two workers never take the same item, a dead worker's items return when its lease
expires, a waiting worker is woken by an enqueue, and a cut connection is a typed, retryable
failure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import anyio
import pytest

from runtime import Event
from runtime.store import ObjectStore, PostgresStore, WorkQueue, open_store, postgres_queue
from runtime.store.base import StoreUnavailableError
from runtime.testing import wait_until
from tests.support.blips import blip_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
async def stores(postgres_url: str, pg_schema: str) -> AsyncIterator[list[ObjectStore]]:
    """Two stores on one schema, each with its own connections: two replicas."""
    url = f"{postgres_url}?schema={pg_schema}"
    async with open_store(url) as one, open_store(url) as other:
        yield [one, other]


def queue_of(store: ObjectStore) -> WorkQueue:
    queue = store.work_queue()
    assert queue is not None
    return queue


def events(count: int, start: int = 0) -> list[Event]:
    return [Event(payload={"n": n}, attributes={"k": n}, id=f"e{n}")
            for n in range(start, start + count)]


async def test_only_a_store_that_serves_replicas_has_a_queue(tmp_path: object) -> None:
    """SQLite runs executions in process; PostgreSQL hands them over through its queue."""
    async with open_store("memory://") as embedded:
        assert embedded.work_queue() is None
    store = open_store("postgresql://postgres@127.0.0.1/test")
    assert isinstance(store, PostgresStore)
    assert store.work_queue() is store.work_queue()


async def test_an_item_keeps_its_event_and_is_taken_oldest_first(stores: list[ObjectStore]) -> None:
    """What the trigger enqueued is what the worker runs: payload (money stays Decimal), attributes
    and id, in the order they were enqueued."""
    queue = queue_of(stores[0])
    event = Event(payload={"Amount": Decimal("12.30"), "at": datetime(2026, 1, 2, tzinfo=UTC)},
                  attributes={"replayId": 7}, id="cdc:1")
    first = await queue.enqueue("invoice", [event])
    later = await queue.enqueue("invoice", events(2))
    assert first[0] < later[0] < later[1]
    taken = await queue.take("invoice", owner="a", limit=2, lease=30)
    assert [item.id for item in taken] == [first[0], later[0]]
    assert taken[0].event == event
    assert (taken[0].flow, taken[0].attempts, taken[0].expired_owner) == ("invoice", 1, None)
    assert taken[0].enqueued_at == pytest.approx(datetime.now(UTC).timestamp(), abs=60)
    assert await queue.take("other-flow", owner="a", limit=5, lease=30) == []
    assert await queue.complete(taken[0].id, owner="a")
    assert not await queue.complete(taken[0].id, owner="a"), "completed twice"
    depth = await queue.depth()
    assert (depth["invoice"].queued, depth["invoice"].leased) == (1, 1)


async def test_two_workers_never_take_the_same_item(stores: list[ObjectStore]) -> None:
    """Workers of two replicas (and several tasks each) taking at once share the items out:
    every item is taken once, none twice, and nobody waits for another's lock."""
    queues = [queue_of(store) for store in stores]
    ids = set(await queues[0].enqueue("invoice", events(300)))
    taken: dict[str, list[int]] = {}

    async def worker(name: str, queue: WorkQueue) -> None:
        mine = taken.setdefault(name, [])
        while True:
            items = await queue.take("invoice", owner=name, limit=7, lease=30)
            if not items:
                return
            mine.extend(item.id for item in items)

    async with anyio.create_task_group() as tg:
        for n in range(6):
            tg.start_soon(worker, f"replica-{n % 2}-task-{n}", queues[n % 2])
    everything = [i for mine in taken.values() for i in mine]
    assert sorted(everything) == sorted(ids), "an item taken twice, or not at all"
    assert sum(1 for mine in taken.values() if mine) > 1, "one worker took everything"


async def test_an_expired_lease_returns_the_item_to_the_queue(stores: list[ObjectStore]) -> None:
    """A worker that dies stops renewing: once its lease ends, another takes the item, and the
    dead one can neither complete nor release it any more."""
    dead, alive = (queue_of(store) for store in stores)
    (item_id,) = await dead.enqueue("invoice", events(1))
    (held,) = await dead.take("invoice", owner="dead", limit=1, lease=0.5)
    assert await alive.take("invoice", owner="alive", limit=1, lease=30) == [], "a live lease"
    returned: list[object] = []

    async def taken() -> bool:
        returned.extend(await alive.take("invoice", owner="alive", limit=1, lease=30))
        return bool(returned)

    await wait_until(taken, within=20, what="the expired item to be taken again")
    (item,) = returned
    assert (item.id, item.attempts, item.expired_owner) == (item_id, 2, "dead")  # type: ignore[attr-defined]
    assert item.event == held.event  # type: ignore[attr-defined]
    assert not await dead.complete(item_id, owner="dead")
    assert not await dead.release(item_id, owner="dead")
    assert await dead.extend([item_id], owner="dead", lease=30) == set()
    assert await alive.complete(item_id, owner="alive")
    assert await alive.depth() == {}


async def test_a_renewed_lease_and_a_released_item(stores: list[ObjectStore]) -> None:
    """A worker renews what it still runs; an item it gives back is free for anyone at once, or
    only after the delay it asked for."""
    queue, other = (queue_of(store) for store in stores)
    ids = await queue.enqueue("invoice", events(2))
    await queue.take("invoice", owner="a", limit=2, lease=30)
    assert await queue.extend(ids, owner="a", lease=60) == set(ids)
    assert await queue.extend(ids, owner="b", lease=60) == set()
    assert await queue.release(ids[0], owner="a", error="STORE:UNAVAILABLE")
    assert await queue.release(ids[1], owner="a", delay=3600)
    again = await other.take("invoice", owner="b", limit=2, lease=30)
    assert [(item.id, item.attempts) for item in again] == [(ids[0], 2)], "the delayed one too"
    depth = await other.depth()
    assert (depth["invoice"].queued, depth["invoice"].leased) == (1, 1)


async def test_an_enqueue_wakes_a_waiting_worker(stores: list[ObjectStore]) -> None:
    """A worker of another replica waiting for work is woken by the commit of an enqueue, long
    before its fallback poll."""
    producer, consumer = (queue_of(store) for store in stores)
    await consumer.wait("invoice", 0)  # listening from now on
    woken: list[bool] = []
    waiting = anyio.Event()

    async def wait() -> None:
        waiting.set()
        woken.append(await consumer.wait("invoice", 600))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await waiting.wait()
            await anyio.wait_all_tasks_blocked()
            await producer.enqueue("other-flow", events(1))
            await producer.enqueue("invoice", events(1))
    assert woken == [True]


async def test_waiting_outlives_the_listening_connection(
        postgres_url: str, pg_schema: str, stores: list[ObjectStore],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The listening session ends (failover, an administrator): its waiters return at once (to
    their poll), and the next wait listens again and is woken again."""
    import asyncpg

    monkeypatch.setattr(postgres_queue, "LISTEN_RETRY", 0.0)
    producer, consumer = (queue_of(store) for store in stores)
    channel = consumer.channel  # type: ignore[attr-defined]
    returned: list[bool] = []

    async def wait() -> None:
        returned.append(await consumer.wait("invoice", 600))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await wait_until(lambda: listening(postgres_url, channel), what="the listener")
            await anyio.wait_all_tasks_blocked()
            conn = await asyncpg.connect(postgres_url)
            try:
                cut = await conn.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE $1 AND pid <> pg_backend_pid()", f'LISTEN "{channel}"%')
            finally:
                await conn.close()
            assert cut
        assert len(returned) == 1, "the waiter was left waiting on a lost listener"
        await consumer.wait("invoice", 0)  # listening again
        returned.clear()
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            await producer.enqueue("invoice", events(1))
    assert returned == [True]


async def listening(postgres_url: str, channel: str) -> bool:
    """Whether a session listens on ``channel`` (its last statement was the LISTEN)."""
    import asyncpg

    conn = await asyncpg.connect(postgres_url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1",
                                        f'LISTEN "{channel}"%'))
    finally:
        await conn.close()


async def test_a_cut_connection_is_a_typed_retryable_failure(postgres_url: str,
                                                             pg_schema: str) -> None:
    """A blip between a worker and the database fails the call under way as STORE:UNAVAILABLE
    (retryable), and the next call, on a new connection, works: the worker rides it out."""
    import asyncpg

    parts = urlsplit(postgres_url)
    async with blip_proxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}",
                                        query=f"schema={pg_schema}"))
        async with open_store(url) as store:
            queue = queue_of(store)
            (item_id,) = await queue.enqueue("invoice", events(1))
            # Another session (not through the proxy) holds the table, so the take is under way
            # on the server when the connection is cut.
            blocker = await asyncpg.connect(postgres_url)
            try:
                holding = blocker.transaction()
                await holding.start()
                await blocker.execute(f'LOCK TABLE "{pg_schema}".work_queue IN ACCESS EXCLUSIVE MODE')

                async def cut_when_blocked() -> None:
                    await wait_until(lambda: blocked(blocker), what="the take to wait for the table")
                    await proxy.cut(after=0.1)

                failures: list[StoreUnavailableError] = []
                async with anyio.create_task_group() as tg:
                    tg.start_soon(cut_when_blocked)
                    try:
                        await queue.take("invoice", owner="a", limit=1, lease=30)
                    except StoreUnavailableError as failure:
                        failures.append(failure)
                await holding.rollback()
            finally:
                await blocker.close()
            assert [(f.error_type, f.retryable) for f in failures] == [("STORE:UNAVAILABLE", True)]
            (item,) = await queue.take("invoice", owner="a", limit=1, lease=30)
            assert item.id == item_id
            assert await queue.complete(item_id, owner="a")


async def blocked(conn: object) -> bool:
    """Whether some session waits for a lock (the take behind the test's table lock)."""
    return bool(await conn.fetchval(  # type: ignore[attr-defined]
        "SELECT count(*) FROM pg_locks WHERE NOT granted"))

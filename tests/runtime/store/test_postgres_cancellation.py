"""PostgreSQL store: a caller cancelled at any await of a lock leaves nothing broken behind.

asyncpg interrupted while a connection opens, or a pool closed while a connection is being given
back, reports its failure later as an error of no task (the loop's exception handler). Each test
stops the store at one such await, cancels the caller there, then checks that the loop saw no such
error and that the store still works.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import asyncpg
import pytest

from runtime.store import ObjectStore, open_store
from runtime.testing import wait_until

from .conftest import _drop_schema

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the event loop's exception handler during the test."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        yield seen
    finally:
        loop.set_exception_handler(previous)


@pytest.fixture
async def schema(postgres_url: str) -> AsyncIterator[str]:
    name = f"splice_test_cancel_{uuid.uuid4().hex[:8]}"
    yield name
    await _drop_schema(postgres_url, name)


async def _no_errors_left(errors: list[dict[str, Any]], store: ObjectStore) -> None:
    """The store still takes a lock; then nothing was reported to the loop, even once collected."""
    async with store.lock("after", timeout=5):
        pass
    await store.aclose()
    gc.collect()
    await anyio.lowlevel.checkpoint()
    assert [str(e.get("exception") or e.get("message")) for e in errors] == []


async def test_cancelled_while_the_pools_open(postgres_url: str, schema: str,
                                              loop_errors: list[dict[str, Any]]) -> None:
    """The first lock of a store is cancelled while the store creates its tables (waiting for
    another replica doing the same): the opening completes, and the caller is cancelled after."""
    blocker = await asyncpg.connect(postgres_url)
    store = open_store(f"{postgres_url}?schema={schema}")
    scope = anyio.CancelScope()

    async def first_lock() -> None:
        with scope:
            async with store.lock("cancel", timeout=1):
                await anyio.sleep_forever()

    async def store_waits() -> bool:
        return bool(await blocker.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))

    try:
        replica = blocker.transaction()
        await replica.start()
        await blocker.execute("SELECT pg_advisory_xact_lock(hashtext('splice:create-schema'))")
        async with anyio.create_task_group() as tg:
            tg.start_soon(first_lock)
            await wait_until(store_waits, within=30, what="the store to wait for the schema lock")
            scope.cancel()  # reaches the waiting task at once
            await replica.rollback()  # the other replica is done: the store's opening may go on
        assert scope.cancelled_caught
        # The opening was not abandoned halfway: the store's table is there.
        assert await blocker.fetchval("SELECT to_regclass($1)", f'"{schema}".kv') is not None
        await _no_errors_left(loop_errors, store)
    finally:
        await blocker.close()
        await store.aclose()


async def test_cancelled_while_a_lock_connection_opens(postgres_url: str, schema: str,
                                                       loop_errors: list[dict[str, Any]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock's caller is cancelled just as the connection its attempt needs is made (TCP is up,
    PostgreSQL's handshake not done yet): the connection is finished and given back, not dropped."""
    store = open_store(f"{postgres_url}?schema={schema}")
    await store.get("warm", "up")  # the pools are open; the lock pool has no connection yet
    scope = anyio.CancelScope()
    made = anyio.Event()
    handshake = asyncpg.connect_utils.TLSUpgradeProto  # the first protocol of every new connection
    connection_made = handshake.connection_made

    def cancel_when_made(protocol: Any, transport: Any) -> None:
        connection_made(protocol, transport)
        if not made.is_set():
            made.set()
            scope.cancel()

    monkeypatch.setattr(handshake, "connection_made", cancel_when_made)
    try:
        with scope:
            async with store.lock("cancel", timeout=1):
                await anyio.sleep_forever()
        assert made.is_set() and scope.cancelled_caught
        await _no_errors_left(loop_errors, store)
    finally:
        await store.aclose()

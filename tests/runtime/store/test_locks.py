"""Named locks: one holder at a time, within a process, across processes, and after a crash."""

from __future__ import annotations

import signal
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from runtime.store import LockTimeoutError, ObjectStore
from runtime.testing import wait_until

from .conftest import Backend, FakeClock

pytestmark = pytest.mark.anyio

WORKERS = Path(__file__).with_name("workers.py")


async def test_lock_excludes_other_tasks(store: ObjectStore) -> None:
    """A counter updated with awaits inside the critical section loses no increment."""
    counter = {"value": 0, "inside": 0, "most_inside": 0}

    async def bump() -> None:
        async with store.lock("counter", timeout=30):
            counter["inside"] += 1
            counter["most_inside"] = max(counter["most_inside"], counter["inside"])
            value = counter["value"]
            await anyio.lowlevel.checkpoint()
            await store.put("n", "tick", value)
            counter["value"] = value + 1
            counter["inside"] -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(bump)
    assert counter["value"] == 40
    assert counter["most_inside"] == 1


async def test_lock_excludes_another_store_instance(backend: Backend) -> None:
    """Two instances share the backend's lock, not just their in-process one."""
    first, second = backend.open(), backend.open()
    async with first.lock("shared", timeout=1):
        with pytest.raises(LockTimeoutError):
            async with second.lock("shared", timeout=0.05):
                pytest.fail("two holders at once")
    async with second.lock("shared", timeout=1):
        pass


async def test_lock_timeout_raises_and_then_frees(store: ObjectStore) -> None:
    """A waiter gives up with LockTimeoutError; once the holder leaves, the lock is free again."""
    holding = anyio.Event()
    leave = anyio.Event()

    async def holder() -> None:
        async with store.lock("busy", timeout=1):
            holding.set()
            await leave.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await holding.wait()
        with pytest.raises(LockTimeoutError):
            async with store.lock("busy", timeout=0.05):
                pytest.fail("got a held lock")
        with pytest.raises(LockTimeoutError):
            async with store.lock("busy", timeout=0):
                pytest.fail("got a held lock")
        leave.set()
    async with store.lock("busy", timeout=0):
        pass


async def test_different_names_do_not_block_each_other(store: ObjectStore) -> None:
    """Holding one name leaves every other name free."""
    async with store.lock("oauth:realm-1", timeout=1), store.lock("oauth:realm-2", timeout=0):
        pass


async def test_body_exception_passes_through_and_releases(store: ObjectStore) -> None:
    """An error inside the lock reaches the caller as itself, and the lock is released."""
    with pytest.raises(KeyError):
        async with store.lock("boom", timeout=1):
            raise KeyError("inside")
    async with store.lock("boom", timeout=0):
        pass


async def test_cancelled_holder_releases(store: ObjectStore) -> None:
    """A holder cancelled mid-way (a timeout around its work) frees the lock."""
    with anyio.move_on_after(0.05):
        async with store.lock("cancel", timeout=1):
            await anyio.sleep_forever()
    async with store.lock("cancel", timeout=0):
        pass


def lease_reaches(backend: Backend, name: str, until: float) -> bool:
    """The stored lease of lock ``name`` runs at least until ``until`` (PostgreSQL's locks have no
    lease: they last as long as their holder's session)."""
    if backend.name != "sqlite":
        return True
    with closing(sqlite3.connect(backend.url.removeprefix("sqlite:///"))) as conn:
        row = conn.execute("SELECT expires_at FROM locks WHERE name = ?", (name,)).fetchone()
    return row is not None and row[0] >= until


async def test_live_holder_keeps_lock_past_its_lease(backend: Backend, clock: FakeClock) -> None:
    """A holder still working is not robbed when its lease would have run out: it is renewed."""
    first, second = backend.open(), backend.open()
    async with first.lock("long", timeout=1, lease=0.3):
        clock.advance(0.2)
        # Renewals go on while the body works: the lease now runs from the advanced clock.
        await wait_until(lambda: lease_reaches(backend, "long", clock.now + 0.3),
                         what="the lease to be renewed")
        clock.advance(0.2)
        with pytest.raises(LockTimeoutError):
            async with second.lock("long", timeout=0):
                pytest.fail("lease was not renewed")


@pytest.mark.slow
async def test_lock_excludes_other_processes(backend: Backend) -> None:
    """Two processes incrementing one stored counter under the lock lose no increment."""
    times = 25
    store = backend.open()
    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(anyio.run_process,
                          [sys.executable, str(WORKERS), "increment", backend.url, "proc", str(times)])
    assert await store.get("counters", "proc") == 2 * times


@pytest.mark.slow
async def test_crashed_holder_lock_is_taken_after_lease(backend: Backend, clock: FakeClock) -> None:
    """A holder killed without releasing keeps others out only until its lease runs out."""
    store = backend.open()
    async with await anyio.open_process(
            [sys.executable, str(WORKERS), "hold", backend.url, "crash", "30"]) as process:
        assert process.stdout is not None
        with anyio.fail_after(60):
            line = await process.stdout.receive()
        assert line.startswith(b"locked")
        with pytest.raises(LockTimeoutError):
            async with store.lock("crash", timeout=0.05):
                pytest.fail("got a lock a live process holds")
        process.send_signal(signal.SIGKILL)
        await process.wait()
    if backend.name == "sqlite":
        # The dead holder's row stays until its lease is over...
        with pytest.raises(LockTimeoutError):
            async with store.lock("crash", timeout=0.05):
                pytest.fail("lease ignored")
        # The holder wrote its lease on the real clock, last when it renewed it before the kill:
        # a second past the lease from now is past it, however long the holder took to start.
        clock.now = time.time() + 31
    # ...and then (PostgreSQL: as soon as its session ends) the lock is free.
    async with store.lock("crash", timeout=10):
        await store.put("n", "after-crash", True)
    assert await store.get("n", "after-crash") is True


async def test_cancelled_waiter_leaves_nothing_behind(backend: Backend) -> None:
    """A waiter given up by its caller (cancelled, not timed out) does not hold the lock later."""
    first, second = backend.open(), backend.open()
    async with first.lock("queue", timeout=1):
        with anyio.move_on_after(0.1) as scope:
            async with second.lock("queue", timeout=30):
                pytest.fail("got a held lock")
        assert scope.cancelled_caught
    async with first.lock("queue", timeout=0), second.lock("other", timeout=0):
        pass
    async with second.lock("queue", timeout=0):
        pass


async def test_body_exception_keeps_its_cause(store: ObjectStore) -> None:
    """``raise X from Y`` inside the lock reaches the caller with Y still attached."""
    with pytest.raises(RuntimeError) as caught:
        async with store.lock("cause", timeout=1):
            try:
                raise KeyError("root")
            except KeyError as exc:
                raise RuntimeError("wrapped") from exc
    assert isinstance(caught.value.__cause__, KeyError)

"""A store that blips loses no event: its failures are typed (``STORE:UNAVAILABLE``, retryable),
retried inside the execution, and an event whose dead letter cannot be kept is left for its trigger
to deliver again rather than passed over."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import pytest

import dsl
from runtime import Connector, Event, OperationContext, OperationSpec, Param, hookimpl
from runtime.registry import load_registry
from runtime.service import open_runtime
from runtime.store import DeadLetterQueue, open_store
from runtime.store.base import StoreUnavailableError
from tests.support.blips import blip_proxy, terminate_lock_sessions

pytestmark = pytest.mark.anyio

WRITE = """
flow: write
steps:
  - outage.write: { key: "#[payload.key]" }
"""

FAIL = """
flow: refuse
steps:
  - outage.refuse: {}
"""


class Outage:
    """The test connector's state: a way to cut the store before the next write, and attempts."""

    def __init__(self) -> None:
        self.cut: Any = None
        self.attempts = 0


def outage_connector(outage: Outage) -> Connector:
    async def write(ctx: OperationContext, params: dict[str, Any]) -> Any:
        outage.attempts += 1
        if outage.cut is not None:
            cut, outage.cut = outage.cut, None
            await cut()
        await ctx.store.put("outage-test", params["key"], {"written": True})
        return {"written": params["key"]}

    async def refuse(ctx: OperationContext, params: dict[str, Any]) -> Any:
        from runtime import SpliceError

        if outage.cut is not None:
            cut, outage.cut = outage.cut, None
            await cut()
        raise SpliceError("the record is invalid", error_type="OUTAGE:INVALID")

    return Connector(name="outage", summary="Store outages", operations=(
        OperationSpec("write", write, params=(Param("key", required=True),), needs_connection=False),
        OperationSpec("refuse", refuse, needs_connection=False),
    ))


class OutagePlugin:
    __test__ = False

    def __init__(self, outage: Outage) -> None:
        self.outage = outage

    @hookimpl
    def splice_connectors(self) -> list[Connector]:
        return [outage_connector(self.outage)]


def load(write_project: Any, outage: Outage, files: dict[str, str]) -> tuple[Any, Any]:
    registry = load_registry([OutagePlugin(outage)], load_entry_points=False)
    project = dsl.load_project(write_project(files, connections="connections: {}"),
                               vocabulary=registry, environ={})
    return registry, project


@pytest.mark.postgres
async def test_a_cut_store_connection_inside_a_step_is_retried_and_the_event_completes(
        postgres_url: str, pg_schema: str, write_project: Any) -> None:
    """The store's connection drops in the middle of the step's write (a failover): the step
    meets ``STORE:UNAVAILABLE``, is retried with backoff, and the event completes, with no dead
    letter. (Without typing, the write failed as ``OUTAGE:UNEXPECTED`` and was dead-lettered.)"""
    outage = Outage()
    registry, project = load(write_project, outage, {"write.yaml": WRITE})
    server = urlsplit(postgres_url)
    async with blip_proxy(server.hostname or "127.0.0.1", server.port or 5432) as proxy:
        url = urlunsplit(server._replace(netloc=f"{server.username or 'postgres'}@127.0.0.1:"
                                                f"{proxy.port}", query=f"schema={pg_schema}"))

        async def cut_in_flight() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(proxy.cut)
                await anyio.sleep(0.05)  # the write below goes out into the stalled connection

        async with open_store(url) as store, open_runtime(project, registry, store=store) \
                as runtime:
            await store.put("outage-test", "warm", True)  # the pool holds a session now
            outage.cut = cut_in_flight
            outcome = await runtime.engine.run("write", Event(payload={"key": "k1"}))
            assert outcome.status == "completed", outcome.error
            assert outage.attempts >= 2 and proxy.cuts == 1
            assert await store.get("outage-test", "k1") == {"written": True}
            assert await DeadLetterQueue(store).count() == 0


async def test_a_locked_sqlite_store_is_a_typed_retryable_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(f"sqlite:///{path}", busy_timeout=0.05) as store:
        await store.put("n", "k", 1)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StoreUnavailableError) as caught:
                await store.put("n", "k", 2)
            assert caught.value.error_type == "STORE:UNAVAILABLE" and caught.value.retryable
        finally:
            other.execute("ROLLBACK")
            other.close()
        await store.put("n", "k", 3)
        assert await store.get("n", "k") == 3


async def test_an_event_whose_dead_letter_cannot_be_kept_is_not_done(
        tmp_path: Path, write_project: Any) -> None:
    """The trigger must not move past it: neither handled nor durably kept."""
    outage = Outage()
    registry, project = load(write_project, outage, {"refuse.yaml": FAIL})
    path = tmp_path / "store.db"
    other = sqlite3.connect(path, isolation_level=None)

    async def lock_store() -> None:
        other.execute("BEGIN EXCLUSIVE")  # free at once: nobody else writes

    try:
        async with open_store(f"sqlite:///{path}", busy_timeout=0.05) as store, \
                open_runtime(project, registry, store=store) as runtime:
            await store.put("warm", "up", True)
            outage.cut = lock_store
            outcome = await runtime.engine.run("refuse", Event(payload={"n": 1}),
                                                 dead_letter_failures=True)
            assert outcome.status == "failed" and not outcome.done
            assert outcome.error is not None and outcome.error.error_type == "OUTAGE:INVALID"
            other.execute("ROLLBACK")
            assert await DeadLetterQueue(store).count() == 0
            # Delivered again once the store answers, it is kept as a dead letter as usual.
            again = await runtime.engine.run("refuse", Event(payload={"n": 1}),
                                                 dead_letter_failures=True)
            assert again.status == "dead-lettered" and again.done
            assert await DeadLetterQueue(store).count() == 1
    finally:
        other.close()


@pytest.mark.postgres
async def test_locks_whose_sessions_are_cut_leave_the_lock_pool_whole(
        postgres_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each lock lost to a cut session gives its pool slot back: more losses than the pool has
    connections, and the lock is still taken at once. (Dropping the dead connection used to raise
    asyncpg's 'released back to the pool', which skipped giving the slot back; once the slots were
    gone, every replica stood by for ever.)"""
    from runtime.store import LockLostError, PostgresStore
    from runtime.store import postgres as backend

    monkeypatch.setattr(backend, "LEASE_CHECK", 0.05)
    store = PostgresStore(postgres_url, schema=pg_schema, lock_pool_size=2)
    try:
        for _ in range(4):
            with pytest.raises(LockLostError):
                async with store.lock("cut-me", timeout=5) as lease:
                    assert await terminate_lock_sessions(postgres_url, pg_schema) == 1
                    await lease.confirm()
        with anyio.fail_after(10):
            async with store.lock("cut-me", timeout=1):
                pass
    finally:
        await store.aclose()

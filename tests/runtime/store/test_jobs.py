"""Job state: a job never runs twice at once, its outcome is kept; source state keeps its key."""

from __future__ import annotations

import anyio
import pytest

from runtime.store import JobState, ObjectStore, SourceStateStore

from .conftest import Backend, FakeClock

pytestmark = pytest.mark.anyio


async def test_second_start_is_refused_while_a_run_is_live(store: ObjectStore,
                                                          clock: FakeClock) -> None:
    """While one run holds the job, try_start says None; after finish, a new run may start."""
    jobs = JobState(store, clock=clock)
    run = await jobs.try_start("nightly-reconcile", lease=60)
    assert run is not None
    assert await jobs.try_start("nightly-reconcile", lease=60) is None
    await jobs.finish(run, status="succeeded", summary={"matched": 10, "fixed": 1})
    last = await jobs.last("nightly-reconcile")
    assert last is not None
    assert (last["status"], last["summary"], last["run_id"]) == (
        "succeeded", {"matched": 10, "fixed": 1}, run.run_id)
    assert await jobs.current("nightly-reconcile") is None
    assert await jobs.try_start("nightly-reconcile", lease=60) is not None


async def test_concurrent_starts_across_replicas_give_one_run(backend: Backend) -> None:
    """Replicas firing the same job together: exactly one run starts."""
    states = [JobState(backend.open(), clock=backend.clock) for _ in range(2)]
    started: list[bool] = []

    async def start(n: int) -> None:
        started.append(await states[n % 2].try_start("sync", lease=60) is not None)

    async with anyio.create_task_group() as tg:
        for n in range(40):
            tg.start_soon(start, n)
    assert started.count(True) == 1


async def test_heartbeat_keeps_a_run_alive_and_a_dead_one_expires(store: ObjectStore,
                                                                 clock: FakeClock) -> None:
    """A run that heartbeats keeps the job; one that stops heartbeating loses it after its lease."""
    jobs = JobState(store, clock=clock)
    run = await jobs.try_start("sync", lease=60)
    assert run is not None
    clock.advance(50)
    assert await jobs.heartbeat(run) is True
    clock.advance(50)
    assert await jobs.try_start("sync", lease=60) is None
    clock.advance(11)
    successor = await jobs.try_start("sync", lease=60)
    assert successor is not None
    assert await jobs.heartbeat(run) is False
    await jobs.finish(run, status="failed", summary={})
    assert (await jobs.current("sync"))["run_id"] == successor.run_id


async def test_progress_is_merged_and_visible(store: ObjectStore, clock: FakeClock) -> None:
    """update() merges progress that status pages read, and the outcome keeps it."""
    jobs = JobState(store, clock=clock)
    run = await jobs.try_start("backfill", lease=60)
    assert run is not None
    assert await jobs.update(run, {"page": 1, "records": 200}) is True
    assert await jobs.update(run, {"page": 2}) is True
    assert (await jobs.current("backfill"))["progress"] == {"page": 2, "records": 200}
    await jobs.finish(run, status="succeeded", summary={"records": 400})
    assert (await jobs.last("backfill"))["progress"] == {"page": 2, "records": 200}
    assert await jobs.last("never-ran") is None


async def test_source_state_round_trip_and_reset(store: ObjectStore) -> None:
    """A source finds its saved watermark again, per flow and source, until reset."""
    states = SourceStateStore(store)
    assert await states.load("opportunity-to-invoice", "salesforce.changes") is None
    await states.save("opportunity-to-invoice", "salesforce.changes", {"since": "2026-11-24T21:00Z"})
    await states.save("payment-to-salesforce", "quickbooks.changes", {"since": "x"})
    assert await states.load("opportunity-to-invoice", "salesforce.changes") == {
        "since": "2026-11-24T21:00Z"}
    assert await store.get("source-state", "opportunity-to-invoice:salesforce.changes") is not None
    assert await states.reset("opportunity-to-invoice", "salesforce.changes") is True
    assert await states.load("opportunity-to-invoice", "salesforce.changes") is None
    assert await states.load("payment-to-salesforce", "quickbooks.changes") == {"since": "x"}

"""Replicas sharing a PostgreSQL store share the executions of an exclusive trigger: the replica
that runs the trigger enqueues its events, every replica's workers run them, each once; a replica
that stops gives back what it holds; an execution the store failed under is taken again."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

import dsl
from dsl.model import RetryPolicy
from runtime import (
    Connector,
    Event,
    OperationContext,
    OperationSpec,
    Param,
    SourceContext,
    SourceSpec,
    error_handling,
    hookimpl,
    workqueue,
)
from runtime.registry import load_registry
from runtime.service import SpliceRuntime, open_runtime
from runtime.store import DeadLetterQueue, ObjectStore, WorkQueue, open_store
from runtime.store.base import StoreUnavailableError
from runtime.store.executions import ExecutionFilter, ExecutionHistory
from runtime.store.postgres_queue import PostgresWorkQueue
from runtime.testing import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

FLOW = """
flow: burst
max-concurrency: 3
trigger:
  burst.events: {}
steps:
  - burst.work: { n: "#[payload.n]" }
"""


@dataclass
class Burst:
    """The test connector's state: how many events the trigger hands over, who ran which."""

    total: int = 0
    handed: list[str] = field(default_factory=list)
    ran: list[tuple[int, Any]] = field(default_factory=list)
    #: While set and not yet set free, the work waits on it (an execution under way at a stop).
    gate: anyio.Event | None = None
    started: anyio.Event = field(default_factory=anyio.Event)
    #: Numbers whose first run fails as the store failing under it.
    fail_once: set[int] = field(default_factory=set)

    def ran_by(self, store: Any) -> list[int]:
        return [n for n, by in self.ran if by is store]


def burst_connector(burst: Burst) -> Connector:
    async def events(ctx: SourceContext, params: dict[str, Any]) -> None:
        while not ctx.stopping:
            n = int(await ctx.load_state() or 0)
            if n < burst.total:
                batch = [Event(payload={"n": i}, id=f"n{i}") for i in range(n, min(n + 10, burst.total))]
                outcomes = await ctx.handle_many(batch)
                burst.handed += [o.status for o in outcomes]
                if all(o.done for o in outcomes):
                    await ctx.save_state(n + len(batch))
                continue
            if not await ctx.sleep(0.05):
                return

    async def work(ctx: OperationContext, params: dict[str, Any]) -> Any:
        n = int(params["n"])
        burst.started.set()
        if burst.gate is not None:
            await burst.gate.wait()
        if n in burst.fail_once:
            burst.fail_once.discard(n)
            raise StoreUnavailableError("the store went away under the step")
        burst.ran.append((n, ctx.store))
        await anyio.sleep(0.01)  # some work, so that a replica's slots fill up
        return {"n": n}

    return Connector(
        name="burst", summary="A burst of events from an exclusive trigger",
        sources=(SourceSpec("events", events, needs_connection=False, exclusive=True),),
        operations=(OperationSpec("work", work, params=(Param("n", type="integer", required=True),),
                                  needs_connection=False),))


class BurstPlugin:
    __test__ = False

    def __init__(self, burst: Burst) -> None:
        self.burst = burst

    @hookimpl
    def splice_connectors(self) -> list[Connector]:
        return [burst_connector(self.burst)]


@dataclass
class Replicas:
    url: str
    project: Any
    registry: Any
    stack: AsyncExitStack
    tg: anyio.abc.TaskGroup
    scopes: dict[str, anyio.CancelScope] = field(default_factory=dict)

    async def start(self, *, work_queue: bool | None = True) -> SpliceRuntime:
        """One more replica: its own store connections, its triggers and workers running."""
        store: ObjectStore = await self.stack.enter_async_context(open_store(self.url))
        runtime = await self.stack.enter_async_context(
            open_runtime(self.project, self.registry, store=store, work_queue=work_queue))
        scope = anyio.CancelScope()

        async def run(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            with scope:
                await runtime.run_triggers(task_status=task_status)

        await self.tg.start(run)
        self.scopes[runtime.replica] = scope
        return runtime

    async def stop(self, runtime: SpliceRuntime, drain: float) -> bool:
        """Stop as ``splice serve`` does: drain, then cancel what is left at the deadline."""
        if await runtime.drain(drain):
            return True
        self.scopes[runtime.replica].cancel()
        with anyio.fail_after(30):
            await runtime.triggers_done.wait()
        return False


@pytest.fixture
def burst() -> Burst:
    return Burst()


@pytest.fixture
async def replicas(postgres_url: str, pg_schema: str, write_project: Any, burst: Burst
                   ) -> AsyncIterator[Replicas]:
    registry = load_registry([BurstPlugin(burst)], load_entry_points=False)
    project = dsl.load_project(write_project({"burst.yaml": FLOW}, connections="connections: {}"),
                               vocabulary=registry, environ={})
    async with AsyncExitStack() as stack, anyio.create_task_group() as tg:
        found = Replicas(f"{postgres_url}?schema={pg_schema}", project, registry, stack, tg)
        yield found
        tg.cancel_scope.cancel()


def queue_of(runtime: SpliceRuntime) -> WorkQueue:
    assert runtime.work_queue is not None
    return runtime.work_queue


async def records(store: ObjectStore) -> list[dict[str, Any]]:
    return await ExecutionHistory(store).list(ExecutionFilter(flow="burst"), limit=10_000)


async def test_the_events_of_an_exclusive_trigger_run_once_on_every_replica(
        replicas: Replicas, burst: Burst) -> None:
    """The trigger runs on one replica; its events are handed over (``enqueued``), and the
    executions spread over both replicas, each event run once and recorded with its replica."""
    burst.total = 120
    burst.gate = anyio.Event()  # both replicas are up before the first execution ends
    one, two = await replicas.start(), await replicas.start()
    assert one.replica != two.replica
    await wait_until(lambda: len(burst.handed) == burst.total, what="the trigger to hand over")
    burst.gate.set()
    await wait_until(lambda: len(burst.ran) == burst.total, within=60, what="every execution")
    assert set(burst.handed) == {"enqueued"}
    assert sorted(n for n, _ in burst.ran) == list(range(burst.total)), "an event ran twice"
    assert burst.ran_by(one.store) and burst.ran_by(two.store), "one replica ran everything"

    async def recorded() -> bool:
        return len(await records(one.store)) == burst.total

    await wait_until(recorded, what="the execution records")
    by_replica = Counter(record.get("replica") for record in await records(one.store))
    assert by_replica == {one.replica: len(burst.ran_by(one.store)),
                          two.replica: len(burst.ran_by(two.store))}
    await wait_until(lambda: empty(one), what="the queue to be empty")
    await wait_until(lambda: one.resources.metrics.queue_taken.labels("burst")._value.get()
                     + two.resources.metrics.queue_taken.labels("burst")._value.get()
                     == burst.total, what="the taken counters")


async def test_without_the_queue_the_trigger_replica_runs_everything(
        replicas: Replicas, burst: Burst) -> None:
    """``SPLICE_WORK_QUEUE=off`` (here ``work_queue=False``): as before the queue, executions run
    where the trigger runs."""
    burst.total = 30
    one, two = (await replicas.start(work_queue=False), await replicas.start(work_queue=False))
    assert one.work_queue is None and two.work_queue is None
    await wait_until(lambda: len(burst.ran) == burst.total, within=30, what="every execution")
    assert set(burst.handed) == {"completed"}
    assert len(burst.ran_by(one.store)) in (0, burst.total)


async def test_a_stopping_replica_gives_back_what_it_runs(replicas: Replicas, burst: Burst) -> None:
    """A replica drained while an execution is under way cancels it at the deadline and gives
    its event back at once: another replica runs it, without waiting for the lease to end."""
    burst.total = 1
    burst.gate = anyio.Event()
    first = await replicas.start()
    await wait_until(lambda: burst.started.is_set(), what="the execution to start")
    assert not await replicas.stop(first, 0.2)  # the deadline passes: the execution is cancelled

    async def given_back() -> bool:
        depth = await queue_of(first).depth()
        return depth.get("burst") is not None and depth["burst"].queued == 1

    await wait_until(given_back, what="the event to be given back")
    burst.gate.set()
    second = await replicas.start()
    await wait_until(lambda: len(burst.ran) == 1, within=30, what="the other replica to run it")
    assert burst.ran_by(second.store) == [0]


async def test_an_execution_the_store_failed_under_is_taken_again(
        replicas: Replicas, burst: Burst, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store fails under a step past its retries: the execution does not finish (no dead
    letter: the store it would go to is what failed), its event goes back to the queue and runs
    again."""
    monkeypatch.setattr(error_handling, "STORE_RETRY", RetryPolicy(attempts=0))
    burst.total = 3
    burst.fail_once = {1}
    runtime = await replicas.start()
    await wait_until(lambda: len(burst.ran) == 3, within=60, what="every execution, one again")
    assert sorted(n for n, _ in burst.ran) == [0, 1, 2]
    await wait_until(lambda: empty(runtime), what="the queue to be empty")
    assert await DeadLetterQueue(runtime.store).count() == 0
    assert runtime.resources.metrics.queue_taken.labels("burst")._value.get() == 4


async def empty(runtime: SpliceRuntime) -> bool:
    return await queue_of(runtime).depth() == {}


async def test_workers_ride_out_an_unavailable_store(replicas: Replicas, burst: Burst,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Taking from the queue fails for a while (a failover): the workers pause and try again;
    nothing crashes and every event runs."""
    burst.total = 5
    failures = {"left": 3}
    take = PostgresWorkQueue.take

    async def failing_take(queue: PostgresWorkQueue, flow: str, **options: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise StoreUnavailableError("connection refused")
        return await take(queue, flow, **options)

    monkeypatch.setattr(PostgresWorkQueue, "take", failing_take)
    await replicas.start()
    await wait_until(lambda: len(burst.ran) == burst.total, within=60, what="every execution")
    assert failures["left"] == 0


async def test_a_long_execution_keeps_its_lease(replicas: Replicas, burst: Burst,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An execution that runs for several lease times (a long retry pause) has its lease renewed:
    no other replica takes its event meanwhile, and it runs once."""
    monkeypatch.setattr(workqueue, "LEASE", 0.6)
    renewed: list[set[int]] = []
    extend = PostgresWorkQueue.extend

    async def counted(queue: PostgresWorkQueue, ids: Any, **options: Any) -> set[int]:
        kept = await extend(queue, ids, **options)
        renewed.append(kept)
        return kept

    monkeypatch.setattr(PostgresWorkQueue, "extend", counted)
    burst.total = 1
    burst.gate = anyio.Event()
    one, two = await replicas.start(), await replicas.start()
    await wait_until(lambda: burst.started.is_set(), what="the execution to start")
    await wait_until(lambda: sum(1 for kept in renewed if kept) >= 5, within=30,
                     what="the lease to be renewed several times")
    burst.gate.set()
    await wait_until(lambda: len(burst.ran) == 1, what="the execution to end")
    await wait_until(lambda: empty(one), what="the queue to be empty")
    assert len(burst.ran) == 1
    recovered = [runtime.resources.metrics.queue_recovered.labels("burst")._value.get()
                 for runtime in (one, two)]
    assert recovered == [0, 0]

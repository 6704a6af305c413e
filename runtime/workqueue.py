"""Work spread across replicas: every replica runs the executions of exclusive triggers.

An exclusive trigger (a poll, a change stream) runs on one replica of those sharing a PostgreSQL
store. Its events go to the store's durable queue (:mod:`runtime.store.queue`); the trigger moves
its position only once the enqueue committed. Every replica, the trigger's own included, runs
:class:`QueueWorkers`: for each flow with an exclusive trigger, a taker that leases as many queued
events as the flow's ``max-concurrency`` leaves room for on this replica, and runs each with the
engine as the trigger would have (same executions, history, dead letters and ledger).

    trigger (one replica) ──enqueue──► work_queue table ──take (SKIP LOCKED)──► workers (every
                                          │  NOTIFY                              replica) ──► engine
                                          └────────────────────────────────────► wakes idle takers

* A finished execution (completed or dead-lettered) completes its item; one that did not finish
  (the store failed under it) gives it back with a delay that grows with its attempts.
* While an execution runs, its lease is renewed every third of :data:`LEASE`. A replica that dies
  stops renewing; its items return to the queue when their leases end and run elsewhere. Such an
  item may run twice; the idempotency ledger and the connectors' keys keep its effects once.
* Store failures (``STORE:UNAVAILABLE``) are ridden out: the taker pauses and tries again.
* Stopping (drain): takers stop taking, running executions finish within the drain deadline, and
  what is cancelled at the deadline is given back at once for another replica to take.

With the embedded SQLite store (one process) nothing is queued: executions run where their trigger
runs. ``SPLICE_WORK_QUEUE=off`` keeps that behaviour on PostgreSQL too (each trigger's replica runs
its executions, as before the queue).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING

import anyio

from dsl.model import Flow
from runtime.store.base import ObjectStore, StoreUnavailableError
from runtime.store.queue import WorkItem, WorkQueue

if TYPE_CHECKING:
    from runtime.engine import FlowEngine
    from runtime.metrics import RuntimeMetrics
    from runtime.registry import Registry

__all__ = ["LEASE", "POLL", "QUEUE_ENV", "QueueWorkers", "queued_flows", "replica_id",
           "work_queue_for"]

logger = logging.getLogger("splice.workqueue")

#: The environment variable that turns the queue off (``off``, ``false``, ``0``, ``no``).
QUEUE_ENV = "SPLICE_WORK_QUEUE"
#: The environment variable that names this replica (default: host, process id and a random tag).
REPLICA_ENV = "SPLICE_REPLICA_ID"
#: How long a taken item stays leased without renewal (seconds): a dead replica's items return
#: this long after its last renewal at most.
LEASE = 30.0
#: The most items one take leases, for a flow that does not batch (a batching flow takes a batch).
TAKE_AT_ONCE = 30
#: How often an idle taker looks at the queue when no notification woke it (seconds).
POLL = 1.0
#: How often the queue's depth is read for the metrics (seconds).
DEPTH_INTERVAL = 5.0
#: The longest pause before an item whose execution did not finish is taken again (seconds).
MAX_RETRY_DELAY = 60.0
#: The longest pause of a taker while the store is unavailable (seconds).
MAX_BLIP_PAUSE = 5.0
#: How long giving back the items of cancelled executions may take when stopping (seconds).
RELEASE_TIMEOUT = 5.0


def replica_id(environ: Mapping[str, str] | None = None) -> str:
    """This replica's name in leases and execution records: ``$SPLICE_REPLICA_ID``, else host,
    process id and a random tag (a restarted process is another replica)."""
    environ = os.environ if environ is None else environ
    configured = environ.get(REPLICA_ENV, "").strip()
    if configured:
        return configured
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def work_queue_for(store: ObjectStore, environ: Mapping[str, str] | None = None
                   ) -> WorkQueue | None:
    """The queue exclusive triggers hand their events to: the store's, unless the store has none
    (SQLite) or ``$SPLICE_WORK_QUEUE`` turns it off."""
    environ = os.environ if environ is None else environ
    if environ.get(QUEUE_ENV, "on").strip().lower() in {"off", "false", "0", "no"}:
        return None
    return store.work_queue()


def queued_flows(flows: Sequence[Flow], registry: Registry) -> list[Flow]:
    """The flows whose trigger is exclusive: the only ones whose events are queued."""
    out = []
    for flow in flows:
        if flow.trigger is None:
            continue
        spec = registry.sources.get(flow.trigger.name)
        if spec is not None and spec.exclusive:
            out.append(flow)
    return out


def _retry_delay(attempts: int) -> float:
    """The pause before an item whose execution did not finish is taken again."""
    return float(min(MAX_RETRY_DELAY, 2 ** max(attempts - 1, 0)))


class QueueWorkers:
    """This replica's workers: take queued events of ``flows`` and run them with ``engine``."""

    def __init__(self, engine: FlowEngine, queue: WorkQueue, flows: Sequence[Flow], *,
                 owner: str, metrics: RuntimeMetrics | None = None, lease: float | None = None,
                 poll: float | None = None) -> None:
        self.engine = engine
        self.queue = queue
        self.flows = list(flows)
        self.owner = owner
        self.metrics = metrics
        self.lease = LEASE if lease is None else lease
        self.poll = POLL if poll is None else poll
        #: Items taken and not finished yet, per flow (for renewal, and what drain gives back).
        self.held: dict[str, dict[int, WorkItem]] = {flow.name: {} for flow in self.flows}

    async def run(self, stop: anyio.Event) -> None:
        """Take and run queued events until ``stop``; running executions finish first."""
        if not self.flows:
            return
        async with anyio.create_task_group() as tg:
            for flow in self.flows:
                tg.start_soon(self._work, flow, stop, name=f"queue:{flow.name}")
            if self.metrics is not None:
                tg.start_soon(self._watch_depth, stop, name="queue-depth")

    # -- one flow -----------------------------------------------------------------------------------

    async def _work(self, flow: Flow, stop: anyio.Event) -> None:
        held = self.held[flow.name]
        async with anyio.create_task_group() as renewing:
            renewing.start_soon(self._renew, held)
            async with anyio.create_task_group() as runs:
                await self._take(flow, stop, held, runs)
            renewing.cancel_scope.cancel()

    async def _take(self, flow: Flow, stop: anyio.Event, held: dict[int, WorkItem],
                    runs: anyio.abc.TaskGroup) -> None:
        """Lease what there is room for, start each; wait for room, or for work, in between."""
        room = anyio.Semaphore(flow.max_concurrency)
        pause = 0.0
        while not stop.is_set():
            if not await _until_stopped(stop, room.acquire()):
                return
            # At most a take's worth at once (a flow's batch size), so that replicas woken by
            # the same burst share it instead of the first one leasing all it has room for.
            free, most = 1, flow.batch.size if flow.batch is not None else TAKE_AT_ONCE
            while room.value and free < most:
                room.acquire_nowait()
                free += 1
            try:
                items = await self.queue.take(flow.name, owner=self.owner, limit=free,
                                              lease=self.lease)
            except StoreUnavailableError as exc:
                items = []
                pause = min(max(pause * 2, 0.2), MAX_BLIP_PAUSE)
                logger.warning("%s: the work queue cannot be read (%s); trying again in %.1fs",
                               flow.name, exc.message, pause)
            else:
                pause = 0.0
            for _ in range(free - len(items)):
                room.release()
            if items:
                self._taken(flow.name, items)
                for item in items:
                    held[item.id] = item
                    runs.start_soon(self._run_one, flow, item, held, room)
                continue
            if pause:
                await _until_stopped(stop, anyio.sleep(pause))
            else:
                await _until_stopped(stop, self.queue.wait(flow.name, self.poll))

    def _taken(self, flow: str, items: Sequence[WorkItem]) -> None:
        recovered = [item for item in items if item.expired_owner]
        for item in recovered:
            logger.warning("%s: event %s returned to the queue after the lease of %s expired; "
                           "running it here (attempt %d)", flow, item.event.id or item.id,
                           item.expired_owner, item.attempts)
        if self.metrics is not None:
            self.metrics.work_taken(flow, len(items), recovered=len(recovered))

    async def _run_one(self, flow: Flow, item: WorkItem, held: dict[int, WorkItem],
                       room: anyio.Semaphore) -> None:
        try:
            try:
                try:
                    outcome = await self.engine.run(flow.name, item.event,
                                                    dead_letter_failures=True)
                finally:
                    # Not renewed from here on: a renewal racing the completion would take the
                    # deleted row for an expired lease.
                    held.pop(item.id, None)
            except anyio.get_cancelled_exc_class():
                # Stopped at the drain deadline: another replica takes it now, not after the lease.
                with anyio.CancelScope(shield=True), anyio.move_on_after(RELEASE_TIMEOUT):
                    await self._give_back(flow, item, delay=0.0, error="stopped while running")
                raise
            except Exception as exc:  # a bug, not a flow failure: keep the worker and the item
                logger.exception("%s: running queued event %s failed", flow.name,
                                 item.event.id or item.id)
                await self._give_back(flow, item, delay=_retry_delay(item.attempts),
                                      error=f"{type(exc).__name__}")
                return
            if outcome.done:
                await self._complete(flow, item)
            else:
                error = outcome.error.error_type if outcome.error is not None else outcome.status
                await self._give_back(flow, item, delay=_retry_delay(item.attempts), error=error)
        finally:
            room.release()

    async def _complete(self, flow: Flow, item: WorkItem) -> None:
        """Remove a finished item, through store blips; if that never works its lease expires and
        it runs again, changing nothing (its effects are in the ledger)."""
        for attempt in range(5):
            try:
                if not await self.queue.complete(item.id, owner=self.owner):
                    logger.warning("%s: event %s finished here after its lease expired; another "
                                   "replica may run it again (its effects stay once)", flow.name,
                                   item.event.id or item.id)
                return
            except StoreUnavailableError as exc:
                logger.warning("%s: completing queued event %s failed (%s)", flow.name,
                               item.event.id or item.id, exc.message)
                await anyio.sleep(min(0.2 * 2 ** attempt, MAX_BLIP_PAUSE))

    async def _give_back(self, flow: Flow, item: WorkItem, *, delay: float, error: str) -> None:
        """Return an item whose execution did not finish; if the store does not take it back, its
        lease expires and it is taken again then."""
        try:
            await self.queue.release(item.id, owner=self.owner, delay=delay, error=error)
        except StoreUnavailableError as exc:
            logger.warning("%s: giving back queued event %s failed (%s); it returns when its "
                           "lease expires", flow.name, item.event.id or item.id, exc.message)

    async def _renew(self, held: dict[int, WorkItem]) -> None:
        """Renew the leases of running items every third of the lease, until cancelled."""
        while True:
            await anyio.sleep(self.lease / 3)
            if not held:
                continue
            ids = list(held)
            try:
                kept = await self.queue.extend(ids, owner=self.owner, lease=self.lease)
            except StoreUnavailableError as exc:
                logger.warning("renewing the leases of %d queued events failed (%s); trying again "
                               "soon", len(ids), exc.message)
                continue
            for lost in set(ids) - kept:
                item = held.get(lost)  # None: it finished meanwhile
                if item is not None:
                    logger.warning("%s: the lease on event %s expired while it ran here; another "
                                   "replica may run it too (its effects stay once)", item.flow,
                                   item.event.id or item.id)

    # -- metrics ------------------------------------------------------------------------------------

    async def _watch_depth(self, stop: anyio.Event) -> None:
        assert self.metrics is not None
        names = [flow.name for flow in self.flows]
        while not stop.is_set():
            try:
                depth = await self.queue.depth()
            except StoreUnavailableError:
                pass  # the takers say so already
            else:
                self.metrics.queue_depth_read(
                    {flow: (d.queued, d.leased) for flow, d in depth.items()}, names)
            await _until_stopped(stop, anyio.sleep(DEPTH_INTERVAL))


async def _until_stopped(stop: anyio.Event, waiting: Awaitable[object]) -> bool:
    """Await ``waiting`` unless ``stop`` is set first; ``False`` when it was (``waiting`` is then
    cancelled)."""
    done = False
    async with anyio.create_task_group() as tg:

        async def on_stop() -> None:
            await stop.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(on_stop)
        await waiting
        done = True
        tg.cancel_scope.cancel()
    return done

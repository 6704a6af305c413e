"""Running a flow's trigger: the source lifecycle, acknowledgement and stored state.

Each flow with a trigger gets one :class:`FlowSourceContext` and one task in the runtime's task
group. The context is the only way a source hands events over, and its ``handle`` returns only once
the event was processed or dead-lettered, so a source that saves its state afterwards never skips
an event (at-least-once delivery; idempotent writes make the effects exactly-once).

With several replicas on a shared store, an exclusive trigger's ``handle`` returns once the event
is committed to the store's work queue instead (outcome ``enqueued``): the replicas' workers run it
(:mod:`runtime.workqueue`), and the trigger may move past it as it would past a processed event.
Triggers that answer their caller with the execution's result (HTTP listeners) are never exclusive,
so they keep running their executions in process.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from dsl.model import Flow, RetryPolicy
from dsl.templates import render
from runtime.context import HttpEndpoint, SourceContext
from runtime.error_handling import retry_delay
from runtime.logcontext import CURRENT_OPERATION
from runtime.message import Event, Message, Outcome
from runtime.params import compile_params
from runtime.store.base import (
    Lease,
    LockLostError,
    LockTimeoutError,
    ObjectStore,
    StoreUnavailableError,
)
from runtime.store.queue import WorkQueue
from runtime.store.sourcestate import SourceStateStore
from runtime.trigger_states import TriggerState, TriggerStates

if TYPE_CHECKING:
    from runtime.engine import FlowEngine
    from runtime.routes import RouteTable

__all__ = ["FlowSourceContext", "run_trigger"]

#: How often a replica standing by for an exclusive trigger tries to take it over (seconds).
LEADER_RETRY = 5.0


class FlowSourceContext(SourceContext):
    """The :class:`runtime.context.SourceContext` of one flow's trigger."""

    def __init__(self, engine: FlowEngine, flow: Flow, routes: RouteTable | None,
                 stop_event: anyio.Event) -> None:
        assert flow.trigger is not None
        self.engine = engine
        self.flow = flow.name
        self._flow = flow
        self._routes = routes
        self._stop = stop_event
        self.store = engine.store
        self.tracer = engine.tracer
        self.logger = logging.getLogger(f"splice.source.{flow.name}")
        connector = flow.trigger.name.split(".", 1)[0]
        self.connection_name, self.connection = engine.connection_for(connector,
                                                                      flow.trigger.connection)
        self._state = SourceStateStore(engine.store)
        self._source_name = flow.trigger.name
        #: The lease of the trigger's lock while this replica runs an exclusive trigger: each
        #: event and each saved position confirms it first, so a replica that lost the lock (its
        #: database session ended) handles nothing more beside the one that took over.
        self.lease: Lease | None = None
        #: The work queue this trigger hands its events to (an exclusive trigger on a store that
        #: replicas share); ``None``: its executions run here.
        self.queue: WorkQueue | None = None

    async def handle(self, event: Event, *, dead_letter_failures: bool = True) -> Outcome:
        if self.lease is not None:
            await self.lease.confirm()
        if self.queue is not None:
            return (await self._enqueue([event]))[0]
        return await self.engine.run(self.flow, event, dead_letter_failures=dead_letter_failures)

    async def handle_many(self, events: Iterable[Event]) -> list[Outcome]:
        batch = list(events)
        if self.queue is not None:
            if self.lease is not None:
                await self.lease.confirm()
            return await self._enqueue(batch)
        outcomes: list[Outcome | None] = [None] * len(batch)

        async def one(index: int, event: Event) -> None:
            outcomes[index] = await self.handle(event)

        # engine.run holds the flow's concurrency limiter, so at most max-concurrency run at once.
        try:
            async with anyio.create_task_group() as tg:
                for index, event in enumerate(batch):
                    tg.start_soon(one, index, event)
        except BaseExceptionGroup as group:
            raise _first_of(group) from group
        return [o for o in outcomes if o is not None]

    async def _enqueue(self, events: list[Event]) -> list[Outcome]:
        """Hand ``events`` to the work queue in one transaction; ``enqueued`` once it committed.

        A store that stays unavailable through the retries fails them all (not done): the trigger
        keeps its position and delivers them again, as when an execution met the same outage.
        """
        assert self.queue is not None
        queue = self.queue
        if not events:
            return []
        try:
            await _through_blips(lambda: queue.enqueue(self.flow, events))
        except StoreUnavailableError as error:
            self.logger.error("%s: %d events could not be queued (%s); the trigger delivers them "
                              "again", self.flow, len(events), error.message)
            return [Outcome("failed", _message(event), error=error) for event in events]
        return [Outcome("enqueued", _message(event)) for event in events]

    async def load_state(self) -> Any:
        return await _through_blips(lambda: self._state.load(self.flow, self._source_name))

    async def save_state(self, state: Any) -> None:
        async def save() -> None:
            if self.lease is not None:
                await self.lease.confirm()
            await self._state.save(self.flow, self._source_name, state)

        await _through_blips(save)

    def add_route(self, path: str, methods: Iterable[str], endpoint: HttpEndpoint) -> None:
        if self._routes is None:
            self.logger.warning("%s wants HTTP route %s, but no HTTP server runs here", self.flow,
                                path)
            return
        self._routes.add(path, set(methods), endpoint, owner=self.flow)

    def suspend_routes(self, reason: str) -> None:
        """The trigger does not run (it failed, or stopped): its routes answer 503 meanwhile."""
        if self._routes is not None:
            self._routes.suspend_owner(self.flow, reason)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def sleep(self, seconds: float) -> bool:
        with anyio.move_on_after(seconds):
            await self._stop.wait()
        return not self._stop.is_set()


T = TypeVar("T")


def _message(event: Event) -> Message:
    """The message an outcome of a queued event carries: the event as handed over."""
    attributes = dict(event.attributes)
    if event.id:
        attributes.setdefault("eventId", event.id)
    return Message(payload=event.payload, attributes=attributes, vars={"trigger": event.payload})

#: How a trigger's own store calls (its position) ride out a store blip before the trigger fails.
STATE_RETRY = RetryPolicy(attempts=5, initial_delay=0.2, max_delay=3.0)


async def _through_blips(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, tried again with backoff while the store is unavailable (a failover, a cut
    connection), so that a blip does not restart the whole trigger."""
    retries = 0
    while True:
        try:
            return await call()
        except StoreUnavailableError as error:
            if retries >= STATE_RETRY.attempts:
                raise
            retries += 1
            await anyio.sleep(retry_delay(STATE_RETRY, retries, error))


def _first_of(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure of a batch that says most about what to do next: a lost trigger lock (stop and
    stand by), else the store being unavailable, else the first."""
    for kind in (LockLostError, StoreUnavailableError):
        matched, _ = group.split(kind)
        if matched is not None:
            return matched.exceptions[0]
    first = group.exceptions[0]
    return _first_of(first) if isinstance(first, BaseExceptionGroup) else first


async def run_trigger(engine: FlowEngine, flow: Flow, routes: RouteTable | None,
                      stop_event: anyio.Event, states: TriggerStates | None = None,
                      work_queue: WorkQueue | None = None) -> None:
    """Run a flow's trigger until shutdown; a crashing source is logged and restarted with backoff.

    What the trigger is doing (running, restarting after which error...) is kept in ``states``.
    An exclusive trigger hands its events to ``work_queue`` when there is one (the replicas'
    workers run them).
    """
    assert flow.trigger is not None
    trigger = flow.trigger
    CURRENT_OPERATION.set(trigger.name)  # what the source's own requests are counted under
    state = (states or TriggerStates()).register(flow.name, trigger.name)
    ctx = FlowSourceContext(engine, flow, routes, stop_event)
    params = dict(render(trigger.params, payload=None, attributes={}, vars={}))
    spec = engine.registry.sources[trigger.name]
    params = compile_params(spec.params, owner=trigger.name)(params)
    runner: Any = spec.run
    if spec.exclusive and engine.store.serves_replicas:
        runner = _one_replica_at_a_time(runner, engine.store, state)
        ctx.queue = work_queue
    delay = 1.0
    while not stop_event.is_set():
        started = anyio.current_time()
        try:
            state.running()
            await runner(ctx, params)
            state.returned(stopping=stop_event.is_set())
            ctx.suspend_routes("stopped")
            return
        except anyio.get_cancelled_exc_class():
            ctx.suspend_routes("stopped")
            raise
        except Exception as exc:  # keep the other flows running; say what happened
            if anyio.current_time() - started > delay:
                delay = 1.0  # it ran well for longer than the last pause: not a crash loop
            if isinstance(exc, StoreUnavailableError):
                delay = min(delay, 5.0)  # the store comes back by itself: look again soon
            state.failed(exc)
            ctx.suspend_routes("is restarting after an error")
            ctx.logger.error("trigger %s of %s failed: %s: %s; restarting in %.0fs", trigger.name,
                             flow.name, type(exc).__name__, exc, delay)
            if not await ctx.sleep(delay):
                return
            delay = min(delay * 2, 60.0)


def _one_replica_at_a_time(run: Any, store: ObjectStore, state: TriggerState) -> Any:
    """``run`` while this replica holds the trigger's store lock; until then, stand by.

    The lock of a replica that dies goes with its database session, so a standby takes over
    within :data:`LEADER_RETRY` seconds. A replica that lives on but loses its session (failover,
    a network blip) has lost the lock too: the lock's lease is confirmed before every event and
    saved position, and watched in between, so its trigger stops at once and it stands by again.
    """

    async def led(ctx: FlowSourceContext, params: dict[str, Any]) -> None:
        standing_by = False
        while not ctx.stopping:
            holding = False
            try:
                async with store.lock(f"trigger:{ctx.flow}", timeout=0.0) as lease:
                    holding = True
                    ctx.lease = lease
                    state.running()
                    if standing_by:
                        ctx.logger.info("%s: this replica takes over the trigger", ctx.flow)
                    await run(ctx, params)
                    return
            except LockTimeoutError:
                if holding:
                    raise  # the source's own, not the trigger's lock
            except LockLostError as exc:
                ctx.logger.error("%s: this replica lost the trigger's lock (%s); its trigger "
                                 "stopped, another replica may run it now", ctx.flow, exc)
                state.standby()
                standing_by = True
                # Its session is gone, so the lock is free unless another replica took it: ask
                # again soon rather than after a standby's full pause.
                if not await ctx.sleep(min(1.0, LEADER_RETRY)):
                    return
                continue
            finally:
                ctx.lease = None
            if not standing_by:
                state.standby()
                ctx.logger.info("%s: another replica runs the trigger; standing by", ctx.flow)
                standing_by = True
            if not await ctx.sleep(LEADER_RETRY):
                return

    return led

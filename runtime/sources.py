"""Running a flow's trigger: the source lifecycle, acknowledgement and stored state.

Each flow with a trigger gets one :class:`FlowSourceContext` and one task in the runtime's task
group. The context is the only way a source hands events over, and its ``handle`` returns only once
the event was processed or dead-lettered, so a source that saves its state afterwards never skips
an event (at-least-once delivery; idempotent writes make the effects exactly-once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio

from dsl.model import Flow
from dsl.templates import render
from runtime.context import HttpEndpoint, SourceContext
from runtime.logcontext import CURRENT_OPERATION
from runtime.message import Event, Outcome
from runtime.params import compile_params
from runtime.store.base import LockTimeoutError, ObjectStore
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

    async def handle(self, event: Event, *, dead_letter_failures: bool = True) -> Outcome:
        return await self.engine.run(self.flow, event, dead_letter_failures=dead_letter_failures)

    async def handle_many(self, events: Iterable[Event]) -> list[Outcome]:
        batch = list(events)
        outcomes: list[Outcome | None] = [None] * len(batch)

        async def one(index: int, event: Event) -> None:
            outcomes[index] = await self.handle(event)

        # engine.run holds the flow's concurrency limiter, so at most max-concurrency run at once.
        async with anyio.create_task_group() as tg:
            for index, event in enumerate(batch):
                tg.start_soon(one, index, event)
        return [o for o in outcomes if o is not None]

    async def load_state(self) -> Any:
        return await self._state.load(self.flow, self._source_name)

    async def save_state(self, state: Any) -> None:
        await self._state.save(self.flow, self._source_name, state)

    def add_route(self, path: str, methods: Iterable[str], endpoint: HttpEndpoint) -> None:
        if self._routes is None:
            self.logger.warning("%s wants HTTP route %s, but no HTTP server runs here", self.flow,
                                path)
            return
        self._routes.add(path, set(methods), endpoint, owner=self.flow)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def sleep(self, seconds: float) -> bool:
        with anyio.move_on_after(seconds):
            await self._stop.wait()
        return not self._stop.is_set()


async def run_trigger(engine: FlowEngine, flow: Flow, routes: RouteTable | None,
                      stop_event: anyio.Event, states: TriggerStates | None = None) -> None:
    """Run a flow's trigger until shutdown; a crashing source is logged and restarted with backoff.

    What the trigger is doing (running, restarting after which error...) is kept in ``states``.
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
    delay = 1.0
    while not stop_event.is_set():
        try:
            state.running()
            await runner(ctx, params)
            state.returned(stopping=stop_event.is_set())
            return
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # keep the other flows running; say what happened
            state.failed(exc)
            ctx.logger.error("trigger %s of %s failed: %s: %s; restarting in %.0fs", trigger.name,
                             flow.name, type(exc).__name__, exc, delay)
            if not await ctx.sleep(delay):
                return
            delay = min(delay * 2, 60.0)


def _one_replica_at_a_time(run: Any, store: ObjectStore, state: TriggerState) -> Any:
    """``run`` while this replica holds the trigger's store lock; until then, stand by.

    The lock of a replica that dies goes with its database session, so a standby takes over
    within :data:`LEADER_RETRY` seconds.
    """

    async def led(ctx: SourceContext, params: dict[str, Any]) -> None:
        standing_by = False
        while not ctx.stopping:
            holding = False
            try:
                async with store.lock(f"trigger:{ctx.flow}", timeout=0.0):
                    holding = True
                    state.running()
                    if standing_by:
                        ctx.logger.info("%s: this replica takes over the trigger", ctx.flow)
                    await run(ctx, params)
                    return
            except LockTimeoutError:
                if holding:
                    raise  # the source's own, not the trigger's lock
            if not standing_by:
                state.standby()
                ctx.logger.info("%s: another replica runs the trigger; standing by", ctx.flow)
                standing_by = True
            if not await ctx.sleep(LEADER_RETRY):
                return

    return led

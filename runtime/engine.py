"""The flow engine: one event through a flow's steps, under its concurrency bound, traced.

:meth:`FlowEngine.run` is the single entry point for every trigger (sources, HTTP listeners,
``splice run``, dead-letter replays). It opens the execution's root span, runs the steps (each in a
child span, retried per the matching ``on-error`` handler), and turns a final failure into the
handler's action. It never raises for a flow failure: the :class:`runtime.message.Outcome` says how
the event ended.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import anyio
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from dsl.model import ErrorHandler, Flow, Project, Step
from runtime.batching import BatchGatherer, BatchObserver
from runtime.cache import ResultCache
from runtime.error_handling import (
    find_handler,
    is_infrastructure,
    retry_delay,
    retry_policy,
    should_retry,
)
from runtime.errors import FlowExecutionError, SpliceError
from runtime.history import ExecutionRecorder
from runtime.logcontext import CURRENT_EXECUTION, ExecutionScope, StepTiming
from runtime.message import Event, Message, Outcome
from runtime.preview import current_plan
from runtime.registry import Registry
from runtime.steps import ExpressionCosts, StepExecution, StepRunner, render_value
from runtime.store.base import ObjectStore, StoreUnavailableError
from runtime.telemetry import (
    ATTR_CONNECTOR,
    ATTR_CORRELATION_ID,
    ATTR_ERROR_TYPE,
    ATTR_FLOW,
    ATTR_OPERATION,
    ATTR_STEP,
    ATTR_STEP_KIND,
    ATTR_TRIGGER,
)

__all__ = ["DEAD_LETTER_ID", "ExecutionObserver", "FlowEngine"]

#: The detail of an error that a called flow kept as a dead letter already: the letter's id.
DEAD_LETTER_ID = "deadLetterId"


class ExecutionObserver(Protocol):
    """Told by the engine when an execution and each step attempt end (metrics: runtime.metrics).

    Called on the hot path: implementations only count, never wait.
    """

    def execution_finished(self, flow: str, message: Message, outcome: Outcome,
                           seconds: float) -> None:
        """An execution of ``flow`` ended with ``outcome`` after ``seconds``."""

    def step_finished(self, flow: str, step_kind: str, seconds: float) -> None:
        """One attempt of a step of ``flow`` ended (completed or failed) after ``seconds``."""


class FlowEngine:
    """Runs the flows of one loaded project against opened connections."""

    def __init__(
        self,
        project: Project,
        registry: Registry,
        *,
        store: ObjectStore,
        connections: Mapping[str, Any],
        tracer: trace.Tracer | None = None,
        logger: logging.Logger | None = None,
        dead_letters: Any = None,
        observer: ExecutionObserver | None = None,
        history: ExecutionRecorder | None = None,
    ) -> None:
        self.project = project
        self.registry = registry
        self.store = store
        self.connections = dict(connections)
        self.tracer = tracer or trace.get_tracer("splice")
        #: False with the no-op tracer (no exporter configured): spans are then skipped outright.
        self.tracing = not isinstance(self.tracer, trace.NoOpTracer)
        self.logger = logger or logging.getLogger("splice.engine")
        if dead_letters is None:
            from runtime.store.deadletters import DeadLetterQueue

            dead_letters = DeadLetterQueue(store)
        self.dead_letters = dead_letters
        #: Told when executions and steps end (``None``: nothing is measured).
        self.observer = observer
        #: Where ended executions are recorded (``None``: history off; see runtime.history).
        self.history = history
        #: The worker thread that transforms proven slow run in (see runtime.steps).
        self.transform_threads = anyio.CapacityLimiter(1)
        #: Results of steps with ``cache:`` (see runtime.cache).
        self.results = ResultCache()
        #: The open batches of steps with ``batch:`` (see runtime.batching).
        self.batches = BatchGatherer(
            tracer=self.tracer, logger=self.logger.getChild("batching"),
            observer=observer if isinstance(observer, BatchObserver) else None)
        self.limiters = {name: anyio.CapacityLimiter(flow.max_concurrency)
                         for name, flow in project.flows.items()}
        self._default_connections = self._index_default_connections()
        #: Each step model class's runner, from the registry (the language's, operations', plugins').
        self._runners: Mapping[type[Step], StepRunner] = registry.runners
        #: Errors whose step was already retried, so that enclosing steps do not retry them again.
        self._retried: weakref.WeakSet[SpliceError] = weakref.WeakSet()
        #: What step runners see of this engine.
        self.execution = StepExecution(
            store=store, tracer=self.tracer, logger=self.logger, results=self.results,
            batches=self.batches,
            costs=ExpressionCosts(), transform_threads=self.transform_threads,
            operations=registry.operations, connection_for=self.connection_for, flow=self.flow,
            run_steps=self.run_steps, called_flow_failed=self.called_flow_failed,
        )

    async def aclose(self) -> None:
        """Send every batch still gathering now, so that no execution waits out its ``within``."""
        await self.batches.aclose()

    # -- entry point ------------------------------------------------------------------------------

    def flow(self, name: str) -> Flow:
        """The flow called ``name`` (``FLOW:NOT_FOUND`` if there is none)."""
        try:
            return self.project.flows[name]
        except KeyError:
            raise FlowExecutionError(f"no flow named '{name}'", error_type="FLOW:NOT_FOUND") from None

    async def run(self, flow_name: str, event: Event | Message, *,
                  dead_letter_failures: bool = False, replay_of: str | None = None) -> Outcome:
        """Run one execution of a flow and say how it ended.

        With ``dead_letter_failures`` an error that would propagate is kept as a dead letter instead
        (what a polling source wants: nothing may be lost). The flow's max-concurrency bound is held
        for the whole execution: callers wait here, which is the back-pressure sources feel.
        ``replay_of`` names the dead letter this execution replays (kept in its history record).
        """
        flow = self.flow(flow_name)
        message = event if isinstance(event, Message) else self._message_for(event)
        history = self.history if current_plan() is None else None  # a dry run is not history
        async with self.limiters[flow.name]:
            started, clock = time.time(), time.perf_counter()
            steps: list[StepTiming] | None = [] if history is not None else None
            scope = ExecutionScope(flow, message, started, steps)
            if steps is not None:
                # The record's id, made now: ids sort by when they were made (the history lists
                # records newest first by id), and a log line may make one before another ends.
                scope.make_id()
            token = CURRENT_EXECUTION.set(scope)
            try:
                outcome = await self._run(flow, message, dead_letter_failures=dead_letter_failures)
            finally:
                CURRENT_EXECUTION.reset(token)
            if self.observer is None and steps is None:
                return outcome
            duration = time.perf_counter() - clock
            if self.observer is not None:
                self.observer.execution_finished(flow.name, message, outcome, duration)
            if steps is not None:
                self._record_execution(scope, outcome, duration, replay_of)
            return outcome

    def _record_execution(self, scope: ExecutionScope, outcome: Outcome, duration: float,
                          replay_of: str | None) -> None:
        """The engine's one history hook: hand the ended execution to the recorder (no I/O here)."""
        assert self.history is not None and scope.steps is not None
        self.history.record(scope.flow, scope.message, outcome, started=scope.started,
                            duration=duration, steps=scope.steps, replay_of=replay_of,
                            execution_id=scope.id, notes=scope.notes)

    def _message_for(self, event: Event) -> Message:
        message = Message(payload=event.payload, attributes=dict(event.attributes))
        if event.id:
            message.attributes.setdefault("eventId", event.id)
        message.vars["trigger"] = event.payload
        return message

    async def _run(self, flow: Flow, message: Message, *, dead_letter_failures: bool) -> Outcome:
        if not self.tracing:
            try:
                await self.run_steps(flow, flow.steps, message, f"flow/{flow.name}/steps")
            except SpliceError as error:
                return await self._handle_failure(flow, message, error, dead_letter_failures)
            return Outcome("completed", message)
        trigger = flow.trigger.name if flow.trigger else "manual"
        with self.tracer.start_as_current_span(
            f"flow {flow.name}",
            attributes={ATTR_FLOW: flow.name, ATTR_CORRELATION_ID: message.correlation_id,
                        ATTR_TRIGGER: trigger},
            record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                await self.run_steps(flow, flow.steps, message, f"flow/{flow.name}/steps")
            except SpliceError as error:
                span.set_attribute(ATTR_ERROR_TYPE, error.error_type)
                span.set_status(Status(StatusCode.ERROR, error.error_type))
                return await self._handle_failure(flow, message, error, dead_letter_failures)
            return Outcome("completed", message)

    # -- steps ------------------------------------------------------------------------------------

    async def run_steps(self, flow: Flow, steps: Sequence[Step], message: Message, path: str) -> None:
        """Run ``steps`` in order on ``message`` (mutated in place)."""
        for index, step in enumerate(steps):
            await self.run_step(flow, step, message, f"{path}/{index}")

    async def run_step(self, flow: Flow, step: Step, message: Message, path: str) -> None:
        """One step in its own span, retried as the flow's ``on-error`` says."""
        retries = 0
        scope = CURRENT_EXECUTION.get()
        timeline = scope.steps if scope is not None else None
        observer = self.observer
        timed = timeline is not None or observer is not None
        while True:
            payload, variables = message.payload, dict(message.vars)
            # One clock for both the metrics' step histogram and the history's timeline.
            started = time.perf_counter() if timed else 0.0
            try:
                await self._traced_step(flow, step, message, path)
                if timed:
                    self._step_ended(flow, step, path, started, "completed", timeline)
                return
            except SpliceError as error:
                if error in self._retried:
                    if timed:
                        self._step_ended(flow, step, path, started, "failed", timeline)
                    raise
                policy = retry_policy(find_handler(flow.on_error, error), error)
                if not should_retry(policy, error, retries):
                    if timed:
                        self._step_ended(flow, step, path, started, "failed", timeline)
                    if retries:
                        self._retried.add(error)
                        error.details.setdefault("attempts", retries + 1)
                    raise
                if timed:
                    self._step_ended(flow, step, path, started, "retried", timeline)
                assert policy is not None
                retries += 1
                delay = retry_delay(policy, retries, error)
                self.logger.warning("%s failed with %s, retry %d/%d in %.2fs", path, error.error_type,
                                    retries, policy.attempts, delay)
                message.payload, message.vars = payload, variables
                await anyio.sleep(delay)
            except BaseException:  # cancelled, or a bug: the attempt still took its time
                if timed:
                    self._step_ended(flow, step, path, started, "failed", timeline)
                raise

    def _step_ended(self, flow: Flow, step: Step, path: str, started: float, status: str,
                    timeline: list[StepTiming] | None) -> None:
        """One step attempt ended: its duration to the observer, its entry to the timeline."""
        ended = time.perf_counter()
        if self.observer is not None:
            self.observer.step_finished(flow.name, step.kind, ended - started)
        if timeline is not None:
            timeline.append((path, step, started, ended, status))

    def _runner(self, step: Step) -> StepRunner:
        runner = self._runners.get(type(step))
        if runner is None:
            raise FlowExecutionError(f"no runner for step '{step.kind}' is installed",
                                     error_type="FLOW:UNKNOWN_STEP")
        return runner

    async def _traced_step(self, flow: Flow, step: Step, message: Message, path: str) -> None:
        if not self.tracing:
            try:
                await self._runner(step)(self.execution, flow, step, message, path)
            except SpliceError as error:
                error.details.setdefault("step", path)
                raise
            return
        attributes: dict[str, Any] = {
            ATTR_FLOW: flow.name, ATTR_STEP: path, ATTR_STEP_KIND: step.kind,
            ATTR_CORRELATION_ID: message.correlation_id,
        }
        connector = getattr(step, "connector", None)
        if connector:
            attributes[ATTR_CONNECTOR] = connector
            attributes[ATTR_OPERATION] = step.kind
        if step.label:
            attributes["splice.label"] = step.label
        with self.tracer.start_as_current_span(
            f"step {step.label or step.kind}", attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                await self._runner(step)(self.execution, flow, step, message, path)
            except SpliceError as error:
                error.details.setdefault("step", path)
                span.set_attribute(ATTR_ERROR_TYPE, error.error_type)
                span.set_status(Status(StatusCode.ERROR, error.error_type))
                raise

    # -- connections ------------------------------------------------------------------------------

    def _index_default_connections(self) -> dict[str, str]:
        by_connector: dict[str, list[str]] = {}
        for name, config in self.project.connections.items():
            by_connector.setdefault(config.connector, []).append(name)
        return {connector: names[0] for connector, names in by_connector.items() if len(names) == 1}

    def connection_for(self, connector: str, name: str | None) -> tuple[str | None, Any]:
        """The opened connection a step or source uses (named, or the connector's only one)."""
        if name is None:
            name = self._default_connections.get(connector)
        if name is None:
            return None, None
        try:
            return name, self.connections[name]
        except KeyError:
            from runtime.errors import ConnectionConfigError

            raise ConnectionConfigError(f"connection '{name}' is not open",
                                        error_type="CONNECTION:NOT_OPEN") from None

    # -- failures ---------------------------------------------------------------------------------

    async def _run_handler_steps(self, flow: Flow, handler: ErrorHandler | None, message: Message,
                                 error: SpliceError) -> None:
        message.vars["error"] = error.to_dict()
        if handler is not None and handler.steps:
            try:
                await self.run_steps(flow, handler.steps, message, f"flow/{flow.name}/on-error")
            except SpliceError as inner:
                self.logger.error("on-error steps of %s failed: %s", flow.name, inner)

    async def _handle_failure(self, flow: Flow, message: Message, error: SpliceError,
                              dead_letter_failures: bool) -> Outcome:
        if is_infrastructure(error):
            # Neither the flow's on-error nor a dead letter: the store they would write to is what
            # failed, and "continue" would drop the event. Not done, so the trigger delivers it
            # again (a poll re-reads it, an inbox keeps it, a listener answers 503).
            self.logger.error("%s: the store is unavailable (%s); the event is left for its "
                              "trigger to deliver again", flow.name, error.message)
            return Outcome("failed", message, error=error)
        handler = find_handler(flow.on_error, error)
        await self._run_handler_steps(flow, handler, message, error)
        action = handler.action if handler is not None else "propagate"
        if action == "continue":
            if handler is not None and handler.has_payload:
                message.payload = render_value(handler.payload, message)
            return Outcome("completed", message, error=error)
        kept = error.details.get(DEAD_LETTER_ID)
        if current_plan() is not None and (action == "dead-letter" or dead_letter_failures):
            # A dry run keeps nothing: its failure is its answer.
            self.logger.warning("%s failed in a dry run (not dead-lettered): %s", flow.name, error)
            return Outcome("failed", message, error=error)
        if kept and (action == "dead-letter" or dead_letter_failures):
            # A flow this one called kept its own input already: that letter replays the failure.
            self.logger.error("%s failed: %s, kept as %s", flow.name, error.error_type, kept)
            return Outcome("dead-lettered", message, error=error, dead_letter_id=str(kept))
        if action == "dead-letter" or dead_letter_failures:
            try:
                return await self.dead_letter(flow, message, error)
            except StoreUnavailableError as unkept:
                self.logger.error("%s failed with %s and its dead letter could not be kept (%s); "
                                  "the event is left for its trigger to deliver again",
                                  flow.name, error.error_type, unkept.message)
                return Outcome("failed", message, error=error)
        self.logger.warning("%s failed: %s", flow.name, error)
        return Outcome("failed", message, error=error)

    async def called_flow_failed(self, flow: Flow, entry: Message, message: Message,
                                 error: Exception) -> None:
        """A flow run by ``flow-ref`` failed: its own ``on-error`` handler applies, as in Mule.

        No handler (or ``propagate``) fails the calling step with the error; ``continue`` returns
        (the flow-ref then completes with the handler's payload); ``dead-letter`` keeps ``entry``,
        the message as the flow got it (its variables are its input), as a letter of that flow, so
        that replaying it runs the flow again, then fails the calling step with the error, marked
        with the letter's id: the caller neither retries it nor keeps it a second time.
        """
        if not isinstance(error, SpliceError) or is_infrastructure(error):
            raise error
        handler = find_handler(flow.on_error, error)
        if handler is None:
            raise error
        await self._run_handler_steps(flow, handler, message, error)
        if handler.action == "continue":
            if handler.has_payload:
                message.payload = render_value(handler.payload, message)
            return
        if (handler.action == "dead-letter" and DEAD_LETTER_ID not in error.details
                and current_plan() is None):  # a dry run keeps no dead letters
            letter_id = await self.dead_letters.add(
                flow=flow.name, step=str(error.details.get("step", "")), message=entry.to_dict(),
                error=error.to_dict(), attempts=int(error.details.get("attempts", 1)))
            self.logger.error("%s: dead-lettered %s as %s", flow.name, error.error_type, letter_id)
            error.details[DEAD_LETTER_ID] = letter_id
            self._retried.add(error)
        raise error

    async def dead_letter(self, flow: Flow, message: Message, error: SpliceError) -> Outcome:
        """Keep the execution's full input and its error for inspection and replay."""
        original = Message(payload=message.vars.get("trigger", message.payload),
                           attributes=message.attributes,
                           vars={"trigger": message.vars.get("trigger", message.payload)},
                           correlation_id=message.correlation_id)
        letter_id = await self.dead_letters.add(
            flow=flow.name, step=str(error.details.get("step", "")), message=original.to_dict(),
            error=error.to_dict(), attempts=int(error.details.get("attempts", 1)))
        self.logger.error("%s: dead-lettered %s as %s", flow.name, error.error_type, letter_id)
        return Outcome("dead-lettered", message, error=error, dead_letter_id=letter_id)

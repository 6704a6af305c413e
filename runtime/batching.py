"""Gathering the calls of one operation step from many executions into batches.

Each execution still handles one event and waits for its own call's outcome. A step that batches
(``batch:`` in the flow) hands its call to :meth:`BatchGatherer.call` instead of calling the
operation's single handler; calls of the same step, connection and batch key
(:attr:`runtime.spec.BatchForm.key`) wait together, and the batch goes to
:attr:`~runtime.spec.BatchForm.handler` when it holds ``size`` calls or its oldest call has waited
``within``, whichever comes first.

No task of its own sends a batch (the engine has no lifetime to hang one on): the first call of a
batch *leads* it. The leader waits until the batch is full or due, then sends it, shielded from its
own cancellation, so the others get their results even if its execution is cancelled meanwhile. A
call cancelled while it waits leaves the batch; a cancelled leader hands the lead to the next call.
A call cancelled once its batch was sent only stops waiting: the API call is made for it all the
same, as a single call cancelled in flight may still have been made.

Every call gets its own outcome: the handler's result for it, or its own copy of its error (the
engine marks an error with the step and its retries, which must not leak into other executions).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import anyio
from opentelemetry import trace
from opentelemetry.trace import Link, Status, StatusCode

from runtime.errors import SpliceError
from runtime.redaction import redact
from runtime.spec import BatchCall, BatchForm
from runtime.telemetry import ATTR_ERROR_TYPE, ATTR_FLOW, ATTR_OPERATION

__all__ = ["ATTR_BATCH_SIZE", "BatchGatherer", "BatchObserver", "BatchRequest"]

#: The span attribute holding how many calls a batch held (on the batch span and each step span).
ATTR_BATCH_SIZE = "splice.batch.size"


@runtime_checkable
class BatchObserver(Protocol):
    """Told of every batch sent (metrics: :mod:`runtime.metrics`). Only counts, never waits."""

    def batch_sent(self, flow: str, operation: str, size: int) -> None:
        """A batch of ``size`` calls of ``operation`` in ``flow`` went to its handler."""


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """Where one call may be batched: which step, and the batch's limits for it.

    ``step`` identifies the step (calls of different steps never share a batch); ``size`` is already
    capped by the operation's ``max_size``; ``within`` is in seconds.
    """

    flow: str
    operation: str
    step: Hashable
    connection: str | None
    form: BatchForm
    size: int
    within: float


@dataclass(eq=False, slots=True)
class _Waiting:
    """One call in a batch, and how it ended once the batch was sent."""

    call: BatchCall
    link: trace.SpanContext
    #: Set when the call's outcome is in, or when the call now leads its batch.
    woken: anyio.Event = field(default_factory=anyio.Event)
    done: bool = False
    result: Any = None
    error: SpliceError | None = None
    batch_size: int = 0


@dataclass(eq=False, slots=True)
class _Batch:
    """Calls waiting to go together; the first of ``waiting`` leads."""

    request: BatchRequest
    due: float
    waiting: list[_Waiting] = field(default_factory=list)
    #: Set when the batch is full (or the gatherer closes): the leader sends it at once.
    ready: anyio.Event = field(default_factory=anyio.Event)
    #: No call joins any more (full, due, or being sent).
    sealed: bool = False
    #: The handler has the calls: a call that stops waiting now is still sent.
    sent: bool = False


class BatchGatherer:
    """The open batches of one runtime, by step, connection and batch key."""

    def __init__(self, *, tracer: trace.Tracer | None = None, logger: logging.Logger | None = None,
                 observer: BatchObserver | None = None) -> None:
        self.tracer = tracer or trace.get_tracer("splice")
        self.logger = logger or logging.getLogger("splice.batching")
        self.observer = observer
        self._open: dict[Hashable, _Batch] = {}
        self._closed = False

    async def call(self, request: BatchRequest, call: BatchCall) -> tuple[Any, int]:
        """Send ``call`` in a batch; its own result and the size of the batch it went in.

        Raises:
            SpliceError: the call's own error, or the batch's when the handler failed as a whole.
        """
        key = (request.step, request.connection, _batch_key(request.form, call.params))
        batch = self._open.get(key)
        if batch is None:
            batch = _Batch(request, due=time.monotonic() + request.within)
            self._open[key] = batch
        waiting = _Waiting(call, trace.get_current_span().get_span_context())
        batch.waiting.append(waiting)
        if len(batch.waiting) >= request.size or self._closed:
            self._seal(key, batch)
        try:
            if batch.waiting[0] is not waiting:
                await waiting.woken.wait()
            if not waiting.done:  # this call leads the batch (from the start, or handed over)
                await self._lead(key, batch)
        except BaseException:
            if not waiting.done and not batch.sent:
                self._leave(key, batch, waiting)
            raise
        if waiting.error is not None:
            raise waiting.error
        return waiting.result, waiting.batch_size

    def waiting(self) -> int:
        """How many calls wait in batches not sent yet (for diagnostics and tests)."""
        return sum(len(batch.waiting) for batch in self._open.values())

    async def aclose(self) -> None:
        """Send every open batch now, and every later call at once: closing never waits ``within``."""
        self._closed = True
        for key, batch in list(self._open.items()):
            self._seal(key, batch)

    # -- one batch ------------------------------------------------------------------------------

    async def _lead(self, key: Hashable, batch: _Batch) -> None:
        """Wait until the batch is full or due, then send it and hand every call its outcome."""
        if not batch.sealed:
            with anyio.move_on_after(batch.due - time.monotonic()):
                await batch.ready.wait()
            self._seal(key, batch)
        batch.sent = True
        outcomes: list[Any] = []
        try:
            with anyio.CancelScope(shield=True):  # the others' outcomes must not die with this one
                outcomes = await self._send(batch)
        finally:  # even if sending broke in a way no call should see, no call waits forever
            for index, waiting in enumerate(batch.waiting):
                if index < len(outcomes) and isinstance(outcomes[index], SpliceError):
                    waiting.error = outcomes[index]
                elif index < len(outcomes):
                    waiting.result = outcomes[index]
                else:
                    waiting.error = SpliceError(
                        f"the batch of {batch.request.operation} ended without an outcome for this call",
                        error_type="FLOW:BATCH_LOST")
                waiting.batch_size = len(batch.waiting)
                waiting.done = True
                waiting.woken.set()

    async def _send(self, batch: _Batch) -> list[Any]:
        """The handler's outcome for each call: a result, or that call's own error."""
        request, calls = batch.request, [waiting.call for waiting in batch.waiting]
        size = len(calls)
        if self.observer is not None:
            self.observer.batch_sent(request.flow, request.operation, size)
        with self.tracer.start_as_current_span(
            f"batch {request.operation}",
            attributes={ATTR_FLOW: request.flow, ATTR_OPERATION: request.operation,
                        ATTR_BATCH_SIZE: size},
            links=[Link(waiting.link) for waiting in batch.waiting if waiting.link.is_valid],
            record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                results = list(await request.form.handler(calls))
                if len(results) != size:
                    raise SpliceError(
                        f"the batch form of {request.operation} answered {len(results)} results "
                        f"for {size} calls", error_type=f"{_namespace(request)}:UNEXPECTED")
            except SpliceError as failure:
                results = self._failed(span, failure, size)
            except Exception as exc:  # a connector bug must still become a typed error per call
                unexpected = SpliceError(
                    f"{request.operation} failed unexpectedly: {type(exc).__name__}: {redact(str(exc))}",
                    error_type=f"{_namespace(request)}:UNEXPECTED")
                unexpected.__cause__ = exc
                results = self._failed(span, unexpected, size)
        failed = sum(isinstance(result, SpliceError) for result in results)
        if failed:
            self.logger.info("batch of %d %s calls: %d failed", size, request.operation, failed)
        return [_own_copy(result) if isinstance(result, SpliceError) else result for result in results]

    @staticmethod
    def _failed(span: trace.Span, error: SpliceError, size: int) -> list[Any]:
        """The batch failed as a whole: every call gets ``error`` (each its own copy, later)."""
        span.set_attribute(ATTR_ERROR_TYPE, error.error_type)
        span.set_status(Status(StatusCode.ERROR, error.error_type))
        return [error] * size

    def _seal(self, key: Hashable, batch: _Batch) -> None:
        """No call joins ``batch`` any more; its leader sends it as soon as it runs."""
        batch.sealed = True
        if self._open.get(key) is batch:
            del self._open[key]
        batch.ready.set()

    def _leave(self, key: Hashable, batch: _Batch, waiting: _Waiting) -> None:
        """A call stopped waiting before its batch was sent: it leaves; a leader hands over."""
        leader = batch.waiting[0] is waiting
        batch.waiting.remove(waiting)
        if not batch.waiting:
            if self._open.get(key) is batch:
                del self._open[key]
        elif leader:
            batch.waiting[0].woken.set()


def _batch_key(form: BatchForm, params: dict[str, Any]) -> Hashable:
    return form.key(params) if form.key is not None else None


def _namespace(request: BatchRequest) -> str:
    return request.operation.split(".", 1)[0].upper()


def _own_copy(error: SpliceError) -> SpliceError:
    """A copy of ``error`` for one execution: the engine marks errors (step, attempts, retried)."""
    copy = type(error).__new__(type(error))
    Exception.__init__(copy, *error.args)
    copy.__dict__.update(error.__dict__)
    copy.details = dict(error.details)
    copy.__cause__ = error.__cause__
    return copy

"""What the runtime hands to connector code: observability, the store, the connection, the message.

Observability is injected, never imported: an operation logs through ``ctx.logger`` and traces
through ``ctx.tracer``, so tests can capture both and the runtime decides where they go.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from opentelemetry import trace

from runtime.budgets import open_budget
from runtime.errors import SpliceError
from runtime.limits import RateLimit
from runtime.message import Event, Message, Outcome
from runtime.preview import PlannedWrite, current_plan, redact_payload
from runtime.resources import RuntimeResources
from runtime.store.base import ObjectStore
from runtime.store.inbox import Inbox
from runtime.store.ledger import IdempotencyLedger, LedgerEntry
from runtime.transports import DEFAULT_RETRY, RetryOptions, create_http_client

__all__ = [
    "ConnectionContext",
    "HttpEndpoint",
    "HttpRequest",
    "HttpResponse",
    "OperationContext",
    "SourceContext",
]

T = TypeVar("T")
#: Ledger namespace of :meth:`OperationContext.once` unless the connector names its own.
ONCE_NAMESPACE = "idempotency"


@dataclass(slots=True)
class ConnectionContext:
    """Given to a connector's ``ConnectionSpec.open`` once per configured connection.

    ``transport`` is ``None`` in production; tests set it to an emulator's ``httpx.ASGITransport`` so
    the connector's real code runs against the emulator in process.

    ``resources`` are the runtime's, shared by all its connections: a connector keeps state that
    outlives one connection there (see :meth:`shared`), never in a module global. A context built
    by hand (a connector's own tests) gets resources of its own.
    """

    name: str
    connector: str
    store: ObjectStore
    logger: logging.Logger
    tracer: trace.Tracer
    transport: httpx.AsyncBaseTransport | None = None
    #: Extra settings the runtime knows (e.g. ``{"public_url": ...}`` for webhook registration).
    runtime_settings: Mapping[str, Any] = field(default_factory=dict)
    resources: RuntimeResources = field(default_factory=RuntimeResources)

    def shared(self, key: Hashable, factory: Callable[[], T]) -> T:
        """The runtime's object under ``key``, made by ``factory()`` for the first connection asking.

        This is how a connector keeps per-runtime state its connections share, e.g. one request
        budget per QuickBooks realm however many connections talk to it. Start keys with the
        connector's name.
        """
        return self.resources.get_or_create(key, factory)

    def budget(self, name: str, requests: float, period: float = 60.0, *,
               burst: float | None = None, max_concurrent: int | None = None) -> RateLimit:
        """The runtime's API budget ``name``: ``requests`` per ``period`` seconds (at most
        ``burst`` of them at once, default ``requests``) and ``max_concurrent`` in flight.

        Every connection of the runtime asking for the same name and figures gets the same budget;
        with a store that replicas share (PostgreSQL) it is kept there, so all replicas spend one
        budget together (see :mod:`runtime.budgets`). Name it after the account whose limits it
        keeps, starting with the connector's name (``quickbooks:{base_url}:{realm}``). Put it in
        front of the HTTP client with ``rate_limit=`` and give its :meth:`RateLimit.pause` as
        ``on_throttle``, so a 429 stops every replica.
        """
        return self.shared(
            ("runtime.budget", name, requests, period, burst, max_concurrent),
            lambda: open_budget(self.store, name, requests, period, burst=burst,
                                max_concurrent=max_concurrent))

    def create_http_client(
        self,
        *,
        base_url: str = "",
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        verify: bool = True,
        retry: RetryOptions | None = DEFAULT_RETRY,
        rate_limit: RateLimit | Callable[[httpx.Request], RateLimit | None] | None = None,
        max_connections: int = 20,
        on_throttle: Callable[[float], Awaitable[None] | None] | None = None,
    ) -> httpx.AsyncClient:
        """The layered client of :func:`runtime.transports.create_http_client` for this connection."""
        return create_http_client(
            self.connector, base_url=base_url, auth=auth, headers=headers, timeout=timeout,
            verify=verify, retry=retry, rate_limit=rate_limit, max_connections=max_connections,
            transport=self.transport, tracer=self.tracer, on_throttle=on_throttle,
            metrics=self.resources.metrics,
        )


@dataclass(slots=True)
class OperationContext:
    """Given to an operation handler for one step of one execution.

    ``path`` locates the step (``flow/opportunity-to-invoice/steps/2``), ``label`` is the step's
    optional label. ``connection`` is the object the connection's ``open`` yielded (``None`` for
    operations that need none).
    """

    flow: str
    path: str
    message: Message
    store: ObjectStore
    logger: logging.Logger
    tracer: trace.Tracer
    connection: Any = None
    connection_name: str | None = None
    label: str | None = None
    #: The step's operation, qualified (``quickbooks.create``).
    operation: str = ""

    @property
    def correlation_id(self) -> str:
        """The execution's correlation id (also on every span and dead letter)."""
        return self.message.correlation_id

    @property
    def dry_run(self) -> bool:
        """Whether this call runs in a dry run: then it must not write, only :meth:`would_write`."""
        return current_plan() is not None

    def would_write(self, action: str, target: Mapping[str, Any], payload: Any) -> None:
        """Tell a write this call would make in a dry run, instead of making it.

        ``action`` in the operation's words (``create``, ``update``, ``POST``); ``target`` what it
        writes to (``{"entity": "Invoice", "id": "130"}``); ``payload`` exactly the body it would
        send (redacted here like logs). Outside a dry run it raises: a write that is told is not made.
        """
        plan = current_plan()
        if plan is None:
            raise RuntimeError("would_write is only for dry runs (check ctx.dry_run)")
        plan.add(PlannedWrite(operation=self.operation, action=action,
                              connection=self.connection_name,
                              target={k: v for k, v in target.items() if v not in (None, "")},
                              payload=redact_payload(payload), flow=self.flow, step=self.path))

    def annotate(self, **attributes: str | int | float | bool) -> None:
        """Add attributes (record ids, counts; never secrets) to the current step's span."""
        span = trace.get_current_span()
        for key, value in attributes.items():
            span.set_attribute(f"splice.{key}", value)

    async def once(self, key: str | None, call: Callable[[], Awaitable[T]], *,
                   namespace: str = ONCE_NAMESPACE, lease: float = 300.0,
                   busy: Callable[[], BaseException] | None = None) -> T:
        """Do an effect exactly once per idempotency ``key``, across retries, replays and replicas.

        The first caller runs ``call`` and its result (storable data: the created record) is
        recorded on the idempotency ledger in the store; a later caller with the same key (a
        replayed event) gets that result back and ``call`` is not run. If ``call`` fails or the
        step is cancelled, nothing is recorded and the key is free again for a retry. While another
        execution holds the key (for at most ``lease`` seconds, in case it died), the error
        ``busy()`` is raised: by default a retryable ``FLOW:IN_PROGRESS``. An empty ``key`` means
        no bookkeeping: ``call`` just runs. ``namespace`` keeps one connector's keys apart. In a dry
        run it refuses (``FLOW:DRY_RUN_WRITE``): an effect is told there, never made.
        """
        if current_plan() is not None:  # a dry run keeps no ledger entry (its preview tells writes)
            raise SpliceError(f"an effect ({key!r}) was attempted in a dry run; the operation's "
                              "preview must tell its writes with would_write",
                              error_type="FLOW:DRY_RUN_WRITE")
        if not key:
            return await call()

        def in_progress(entry: LedgerEntry) -> BaseException:
            if busy is not None:
                return busy()
            return SpliceError(f"another execution is doing {key!r} right now",
                               error_type="FLOW:IN_PROGRESS", retryable=True, retry_after=5.0,
                               details={"idempotencyKey": key})

        return await IdempotencyLedger(self.store, namespace).once(key, call, lease=lease,
                                                                   busy=in_progress)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An inbound HTTP request as a source endpoint sees it (no framework types leak to plugins)."""

    method: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    path_params: Mapping[str, str] = field(default_factory=dict)
    client: str | None = None

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` when it is not, or is nested too deeply)."""
        from runtime.jsonutil import loads

        return loads(self.body or b"null")


@dataclass(slots=True)
class HttpResponse:
    """What a source endpoint answers. ``body`` that is not bytes/str is sent as JSON."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


HttpEndpoint = Callable[[HttpRequest], Awaitable[HttpResponse]]


class SourceContext(ABC):
    """Given to a source's ``run`` for the lifetime of its flow.

    A source turns the outside world into :class:`Event` objects and hands them over with
    :meth:`handle` (one) or :meth:`handle_many` (a batch, run concurrently within the flow's
    max-concurrency). Both return only once every event was processed or dead-lettered: that is the
    moment to advance a watermark with :meth:`save_state`.
    """

    flow: str
    connection: Any
    connection_name: str | None
    store: ObjectStore
    logger: logging.Logger
    tracer: trace.Tracer

    @abstractmethod
    async def handle(self, event: Event, *, dead_letter_failures: bool = True) -> Outcome:
        """Run the flow for one event; never raises for a flow failure (see ``Outcome``).

        A failure that would propagate is kept as a dead letter unless ``dead_letter_failures`` is
        false: only a caller that reports the failure back (an HTTP listener) should ask for that.
        """

    @abstractmethod
    async def handle_many(self, events: Iterable[Event]) -> list[Outcome]:
        """Run the flow for each event concurrently (bounded); outcomes in input order."""

    @abstractmethod
    async def load_state(self) -> Any:
        """The source's stored state (watermark, replay id, offsets), or ``None`` the first time."""

    @abstractmethod
    async def save_state(self, state: Any) -> None:
        """Persist the source's state; call only after the events it covers are done."""

    @abstractmethod
    def add_route(self, path: str, methods: Iterable[str], endpoint: HttpEndpoint) -> None:
        """Serve ``endpoint`` at ``path`` on ``splice serve``'s HTTP server (``{name}`` params ok)."""

    @property
    @abstractmethod
    def stopping(self) -> bool:
        """Whether shutdown began: a polling loop should finish its current batch and return."""

    @abstractmethod
    async def sleep(self, seconds: float) -> bool:
        """Sleep, waking early on shutdown; ``False`` when the source should stop."""

    def inbox(self, name: str) -> Inbox:
        """The durable inbox ``name`` in the store: accept deliveries fast, work them off later.

        A webhook endpoint ``put``s each delivery (redeliveries of a pending or recently completed
        id are dropped) and answers; the source then drains ``pending()`` in arrival order,
        ``complete``-ing each item once handled, or counting a failure with ``fail``. Items survive
        restarts, and every replica sharing the store sees the same inbox.
        """
        return Inbox(self.store, name)

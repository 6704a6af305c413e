"""Prometheus metrics of one runtime, for ``GET /metrics`` and the alert evaluator.

Each runtime owns a :class:`RuntimeMetrics` (on its :class:`~runtime.resources.RuntimeResources`)
with a registry of its own, never the process-global one: two runtimes in one process (or two tests)
count apart. prometheus-client is used directly rather than OpenTelemetry metrics with a Prometheus
reader: the counters sit on the hot path of every execution and step, and a labelled child cached
here is one locked add to bump, where an OpenTelemetry instrument looks up its attribute set on
every call.

What is counted, and where:

- executions and their duration, step durations: the engine's observer (:meth:`execution_finished`,
  :meth:`step_finished`);
- connector HTTP requests (per attempt) and rate-limit waits: the HTTP layers of
  :mod:`runtime.transports`; token refresh failures: :class:`runtime.oauth.OAuth2Auth`; creates
  whose answer was lost: the connectors that look them up (QuickBooks);
- dead letters: :class:`MeteredDeadLetterQueue`; store latency: :class:`MeteredStore`;
- the work queue shared by replicas: events taken (and recovered from an expired lease) per flow,
  and the depth the workers last read (:mod:`runtime.workqueue`);
- trigger state and lag: read from :class:`runtime.trigger_states.TriggerStates` at scrape time, and
  the change time that sources put on events (``systemModstamp``, ``commitTimestamp``,
  ``lastUpdated``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from runtime.store.base import Lease, ObjectStore
from runtime.store.deadletters import DeadLetterQueue

if TYPE_CHECKING:
    from runtime.message import Message, Outcome
    from runtime.store.queue import WorkQueue
    from runtime.trigger_states import TriggerStates

__all__ = [
    "CONTENT_TYPE",
    "MeteredDeadLetterQueue",
    "MeteredStore",
    "RuntimeMetrics",
    "change_time",
]

#: The ``Content-Type`` of :meth:`RuntimeMetrics.exposition`.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Buckets for executions and steps: from a cached lookup (1 ms) to a slow batch (2 min).
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                     30.0, 60.0, 120.0)
#: Buckets for store calls and rate-limit waits.
_SHORT_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                  5.0, 10.0, 30.0, 60.0)
#: Event attributes that carry the time the change happened at its origin, by source.
_CHANGE_TIME_ATTRIBUTES = ("systemModstamp", "commitTimestamp", "lastUpdated")
#: Batch sizes: QuickBooks /batch takes 30 items, Salesforce sObject Collections 200 records.
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 100, 200)
#: How long outcomes are kept for failure-rate alerts, counted in buckets of ``_BUCKET`` seconds
#: (so memory stays bounded whatever the rate of executions).
_OUTCOME_HORIZON = 24 * 3600
_BUCKET = 10


def change_time(attributes: Mapping[str, Any]) -> float | None:
    """When the change behind an event happened (epoch seconds), where its source says so."""
    for name in _CHANGE_TIME_ATTRIBUTES:
        value = attributes.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value / 1000.0 if value > 1e11 else float(value)  # CometD: epoch milliseconds
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


class RuntimeMetrics:
    """The metrics of one runtime: its own registry, instruments and the recent facts alerts read."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        r = self.registry
        self.executions = Counter("splice_executions", "Executions by flow and outcome",
                                  ["flow", "outcome"], registry=r)
        self.execution_duration = Histogram(
            "splice_execution_duration_seconds", "Execution duration by flow", ["flow"],
            buckets=_DURATION_BUCKETS, registry=r)
        self.step_duration = Histogram(
            "splice_step_duration_seconds", "Step duration (each attempt) by flow and step kind",
            ["flow", "step_kind"], buckets=_DURATION_BUCKETS, registry=r)
        self.connector_requests = Counter(
            "splice_connector_requests",
            "HTTP requests of connectors (each attempt) by operation, method and status",
            ["connector", "operation", "method", "status"], registry=r)
        self.rate_limit_wait = Histogram(
            "splice_rate_limit_wait_seconds", "Time requests waited for a rate-limit slot",
            ["connector"], buckets=_SHORT_BUCKETS, registry=r)
        self.dead_letters = Counter("splice_dead_letters", "Dead letters added, by flow", ["flow"],
                                    registry=r)
        self.lost_answers = Counter(
            "splice_lost_answers", "Creates whose answer was lost, by what the lookup found: "
            "found (the record the lost answer carried) or resent (nothing: sent again)",
            ["connector", "entity", "outcome"], registry=r)
        self.token_refresh_failures = Counter(
            "splice_token_refresh_failures", "Failed OAuth token refreshes by connector",
            ["connector"], registry=r)
        self.store_duration = Histogram(
            "splice_store_operation_duration_seconds", "Store call latency by operation",
            ["operation"], buckets=_SHORT_BUCKETS, registry=r)
        self.batch_size = Histogram(
            "splice_batch_size", "Calls sent together in one batch, by flow and operation",
            ["flow", "operation"], buckets=_BATCH_BUCKETS, registry=r)
        # -- the work queue shared by replicas (runtime.workqueue) --
        self.queue_taken = Counter(
            "splice_work_queue_taken", "Queued events this replica took to run, by flow",
            ["flow"], registry=r)
        self.queue_recovered = Counter(
            "splice_work_queue_recovered",
            "Queued events this replica took after another worker's lease on them expired",
            ["flow"], registry=r)
        self.queue_depth = Gauge(
            "splice_work_queue_depth", "Events in the work queue by flow and state (queued: "
            "waiting for a worker; leased: being run), as this replica last read it",
            ["flow", "state"], registry=r)
        self.trigger_lag = _TriggerCollector(self)
        r.register(self.trigger_lag)
        # Labelled children, cached: ``labels()`` takes a lock and builds a tuple on every call.
        self._execution_children: dict[tuple[str, str], Any] = {}
        self._duration_children: dict[str, Any] = {}
        self._step_children: dict[tuple[str, str], Any] = {}
        self._request_children: dict[tuple[str, str, str, str], Any] = {}
        #: Recent outcomes per flow, [bucket start, failed, total], for failure-rate alerts.
        self.outcomes: dict[str, deque[list[int]]] = {}
        #: Per connector, the last token refresh error (``None`` once a refresh succeeds again).
        self.auth_errors: dict[str, str | None] = {}
        #: Per connector, recent rate-limit waits (time, seconds), for API budget alerts.
        self.waits: dict[str, deque[tuple[float, float]]] = {}
        #: Per flow, (handled at, change time) of the newest handled change.
        self.last_change: dict[str, tuple[float, float]] = {}
        self.triggers: TriggerStates | None = None

    # -- the engine's observer ---------------------------------------------------------------------

    def execution_finished(self, flow: str, message: Message, outcome: Outcome,
                           seconds: float) -> None:
        """An execution of ``flow`` ended (called by the engine, once per execution)."""
        status = outcome.status
        child = self._execution_children.get((flow, status))
        if child is None:
            child = self._execution_children[(flow, status)] = self.executions.labels(flow, status)
        child.inc()
        duration = self._duration_children.get(flow)
        if duration is None:
            duration = self._duration_children[flow] = self.execution_duration.labels(flow)
        duration.observe(seconds)
        now = self._clock()
        second = int(now) // _BUCKET * _BUCKET
        recent = self.outcomes.get(flow)
        if recent is None:
            recent = self.outcomes[flow] = deque(maxlen=_OUTCOME_HORIZON // _BUCKET + 1)
        if not recent or recent[-1][0] != second:
            recent.append([second, 0, 0])
        bucket = recent[-1]
        bucket[2] += 1
        if status != "completed":
            bucket[1] += 1
        if message.attributes:
            changed = change_time(message.attributes)
            if changed is not None:
                newest = self.last_change.get(flow)
                if newest is None or changed >= newest[1]:
                    self.last_change[flow] = (now, changed)

    def step_finished(self, flow: str, step_kind: str, seconds: float) -> None:
        """One attempt of a step ended (called by the engine)."""
        child = self._step_children.get((flow, step_kind))
        if child is None:
            child = self._step_children[(flow, step_kind)] = self.step_duration.labels(flow, step_kind)
        child.observe(seconds)

    def batch_sent(self, flow: str, operation: str, size: int) -> None:
        """A batch of ``size`` calls of ``operation`` went to its batch form (runtime.batching)."""
        self.batch_size.labels(flow, operation).observe(size)

    # -- connectors --------------------------------------------------------------------------------

    def request_finished(self, connector: str, operation: str, method: str, status: str) -> None:
        """One HTTP attempt of a connector, made for ``operation`` (a step such as
        ``quickbooks.create``, or the trigger whose source polls), got ``status`` (a code, or the
        transport error's name)."""
        key = (connector, operation, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.connector_requests.labels(*key)
        child.inc()

    def rate_limit_waited(self, connector: str, seconds: float) -> None:
        """A request of ``connector`` waited ``seconds`` for its rate-limit slot."""
        self.rate_limit_wait.labels(connector).observe(seconds)
        if seconds > 0.001:
            waits = self.waits.setdefault(connector, deque(maxlen=10_000))
            waits.append((self._clock(), seconds))

    def lost_answer(self, connector: str, entity: str, outcome: str) -> None:
        """A create of ``connector`` lost its answer; the lookup ``found`` the record or it was ``resent``."""
        self.lost_answers.labels(connector, entity, outcome).inc()

    def token_refresh_failed(self, connector: str, error: BaseException) -> None:
        """Getting a token for ``connector`` failed (the connection cannot authenticate)."""
        self.token_refresh_failures.labels(connector).inc()
        self.auth_errors[connector] = f"{type(error).__name__}: {error}"

    def token_obtained(self, connector: str) -> None:
        """A token was obtained for ``connector`` (clears a recorded failure)."""
        if self.auth_errors.get(connector) is not None:
            self.auth_errors[connector] = None

    # -- the work queue ----------------------------------------------------------------------------

    def work_taken(self, flow: str, count: int, *, recovered: int = 0) -> None:
        """This replica took ``count`` queued events of ``flow``, ``recovered`` of them from a
        worker whose lease expired."""
        self.queue_taken.labels(flow).inc(count)
        if recovered:
            self.queue_recovered.labels(flow).inc(recovered)

    def queue_depth_read(self, depth: Mapping[str, tuple[int, int]], flows: Iterable[str]) -> None:
        """The queue's (queued, leased) items per flow, as just read; ``flows`` absent from it
        have none."""
        for flow in {*flows, *depth}:
            queued, leased = depth.get(flow, (0, 0))
            self.queue_depth.labels(flow, "queued").set(queued)
            self.queue_depth.labels(flow, "leased").set(leased)

    # -- reading -----------------------------------------------------------------------------------

    def failure_rate(self, flow: str, window: float) -> tuple[int, int]:
        """(failed, total) executions of ``flow`` in the last ``window`` seconds (to 10 s)."""
        since = self._clock() - window
        failed = total = 0
        for start, bucket_failed, bucket_total in self.outcomes.get(flow, ()):
            if start + _BUCKET > since:  # a bucket that reaches into the window counts whole
                failed += bucket_failed
                total += bucket_total
        return failed, total

    def waited(self, connector: str, window: float) -> float:
        """Seconds requests of ``connector`` waited for rate-limit slots in the last ``window``."""
        since = self._clock() - window
        return sum(seconds for at, seconds in self.waits.get(connector, ()) if at >= since)

    def trigger_lag_seconds(self, flow: str) -> float | None:
        """Age of the newest change ``flow`` handled, when it was handled (``None``: not known)."""
        newest = self.last_change.get(flow)
        return None if newest is None else max(0.0, newest[0] - newest[1])

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


class _TriggerCollector(Collector):
    """Trigger state and lag, read at scrape time."""

    def __init__(self, metrics: RuntimeMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        metrics = self._metrics
        up = GaugeMetricFamily("splice_trigger_running",
                               "1 when the flow's trigger runs or stands by for another replica",
                               labels=["flow", "trigger", "state"])
        failures = GaugeMetricFamily("splice_trigger_failures",
                                     "Failures of the trigger's source since the runtime started",
                                     labels=["flow", "trigger"])
        if metrics.triggers is not None:
            for flow, state in metrics.triggers.all().items():
                up.add_metric([flow, state.trigger, state.state], 1.0 if state.healthy else 0.0)
                failures.add_metric([flow, state.trigger], float(state.failures))
        lag = GaugeMetricFamily("splice_trigger_lag_seconds",
                                "Age of the newest handled change when it was handled",
                                labels=["flow"])
        handled = GaugeMetricFamily("splice_trigger_last_change_handled_timestamp_seconds",
                                    "When the newest change with a known time was handled",
                                    labels=["flow"])
        for flow, (at, changed) in sorted(metrics.last_change.items()):
            lag.add_metric([flow], max(0.0, at - changed))
            handled.add_metric([flow], at)
        return [up, failures, lag, handled]


class MeteredDeadLetterQueue(DeadLetterQueue):
    """The dead-letter queue, counting what it adds by flow."""

    def __init__(self, store: ObjectStore, metrics: RuntimeMetrics) -> None:
        super().__init__(store)
        self._metrics = metrics

    async def add(self, *, flow: str, step: str, message: dict[str, Any], error: dict[str, Any],
                  attempts: int = 1) -> str:
        """Keep the letter, then count it."""
        letter_id = await super().add(flow=flow, step=step, message=message, error=error,
                                      attempts=attempts)
        self._metrics.dead_letters.labels(flow).inc()
        return letter_id


class MeteredStore(ObjectStore):
    """An :class:`ObjectStore` that times every call of the store it wraps.

    Attributes it does not define (a backend's ``dsn``, ``path``) are the wrapped store's.
    """

    def __init__(self, inner: ObjectStore, metrics: RuntimeMetrics) -> None:
        self.inner = inner
        hist = metrics.store_duration
        self._get, self._put = hist.labels("get"), hist.labels("put")
        self._put_many = hist.labels("put_many")
        self._put_if_absent = hist.labels("put_if_absent")
        self._cas, self._delete = hist.labels("compare_and_set"), hist.labels("delete")
        self._count = hist.labels("count")

    @staticmethod
    def wrap(store: ObjectStore, metrics: RuntimeMetrics) -> MeteredStore:
        """``store`` metered, keeping whether it serves several replicas."""
        if isinstance(store, MeteredStore):
            return store
        return (_MeteredReplicaStore if store.serves_replicas else MeteredStore)(store, metrics)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, namespace: str, key: str) -> Any | None:
        with self._get.time():
            return await self.inner.get(namespace, key)

    async def put(self, namespace: str, key: str, value: Any, *, ttl: float | None = None) -> None:
        with self._put.time():
            await self.inner.put(namespace, key, value, ttl=ttl)

    async def put_many(self, entries: Sequence[tuple[str, str, Any]], *,
                       ttl: float | None = None) -> None:
        # The backend's own batch (one transaction), not the protocol's default of one put each.
        with self._put_many.time():
            await self.inner.put_many(entries, ttl=ttl)

    async def put_if_absent(self, namespace: str, key: str, value: Any, *,
                            ttl: float | None = None) -> bool:
        with self._put_if_absent.time():
            return await self.inner.put_if_absent(namespace, key, value, ttl=ttl)

    async def compare_and_set(self, namespace: str, key: str, expected: Any, value: Any, *,
                              ttl: float | None = None) -> bool:
        with self._cas.time():
            return await self.inner.compare_and_set(namespace, key, expected, value, ttl=ttl)

    async def delete(self, namespace: str, key: str) -> bool:
        with self._delete.time():
            return await self.inner.delete(namespace, key)

    def items(self, namespace: str, prefix: str = "", *, limit: int | None = None,
              after: str | None = None) -> AsyncIterator[tuple[str, Any]]:
        return self.inner.items(namespace, prefix, limit=limit, after=after)

    async def count(self, namespace: str, prefix: str = "") -> int:
        with self._count.time():
            return await self.inner.count(namespace, prefix)

    def lock(self, name: str, *, timeout: float = 30.0,
             lease: float = 60.0) -> AbstractAsyncContextManager[Lease]:
        return self.inner.lock(name, timeout=timeout, lease=lease)

    def work_queue(self) -> WorkQueue | None:
        return self.inner.work_queue()

    async def diagnose(self) -> list[str]:
        return await self.inner.diagnose()

    async def aclose(self) -> None:
        await self.inner.aclose()


class _MeteredReplicaStore(MeteredStore):
    serves_replicas: ClassVar[bool] = True

"""Assembling a running Splice: project, plugins, store, connections, engine and triggers.

``splice serve``, ``splice run``, ``splice dlq replay`` and the tests all go through
:func:`open_runtime`, so there is one way connections are opened and closed and one place where
triggers are started and drained.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

import dsl
from dsl.model import Project
from runtime.context import ConnectionContext
from runtime.engine import FlowEngine
from runtime.errors import ConnectionConfigError
from runtime.history import ExecutionRecorder, HistorySettings
from runtime.logcontext import CURRENT_OPERATION
from runtime.redaction import inherit_secrets, register_secret, use_secrets
from runtime.registry import Registry, load_registry
from runtime.resources import RuntimeResources
from runtime.routes import RouteTable
from runtime.sources import run_trigger
from runtime.store import open_store
from runtime.store.base import ObjectStore
from runtime.store.queue import WorkQueue
from runtime.telemetry import create_tracer_provider, get_tracer
from runtime.trigger_states import TriggerStates
from runtime.workqueue import QueueWorkers, queued_flows, replica_id, work_queue_for

if TYPE_CHECKING:
    from runtime.alerts import AlertEvaluator

__all__ = ["SpliceRuntime", "load_project", "open_runtime"]

logger = logging.getLogger("splice.runtime")


def load_project(root: str | Path, *, env: str | None = None, registry: Registry | None = None,
                 environ: Mapping[str, str] | None = None) -> tuple[Project, Registry]:
    """Load and check a project against the installed plugins (raises ``dsl.FlowErrors``)."""
    registry = registry or load_registry()
    environ = os.environ if environ is None else environ
    env = env or environ.get("SPLICE_ENV") or "dev"
    project = dsl.load_project(Path(root), env=env, vocabulary=registry, environ=environ,
                               on_secret=register_secret)
    return project, registry


@dataclass(slots=True)
class SpliceRuntime:
    """A project with its store and connections open, ready to run flows and triggers."""

    project: Project
    registry: Registry
    store: ObjectStore
    engine: FlowEngine
    tracer_provider: TracerProvider
    resources: RuntimeResources = field(default_factory=RuntimeResources)
    routes: RouteTable = field(default_factory=RouteTable)
    stop_event: anyio.Event = field(default_factory=anyio.Event)
    sources_started: anyio.Event = field(default_factory=anyio.Event)
    triggers_done: anyio.Event = field(default_factory=anyio.Event)
    #: What each flow's trigger is doing (for ``GET /ready``).
    triggers: TriggerStates = field(default_factory=TriggerStates)
    #: The alert evaluator (``settings.alerts``), run beside the triggers; ``None``: no rules.
    alerts: AlertEvaluator | None = None
    #: This replica's name (in work queue leases and execution records).
    replica: str = ""
    #: The queue exclusive triggers hand their events to, run by every replica's workers
    #: (:mod:`runtime.workqueue`); ``None``: executions run where their trigger runs.
    work_queue: WorkQueue | None = None

    def request_stop(self) -> None:
        """Ask every trigger to finish what it is doing and return."""
        self.stop_event.set()

    async def drain(self, seconds: float) -> bool:
        """Stop the triggers and wait up to ``seconds`` for in-flight executions to end.

        ``False`` when the time ran out: the caller then cancels what is left (and says so here).
        """
        self.request_stop()
        with anyio.move_on_after(seconds) as scope:
            await self.triggers_done.wait()
        if scope.cancelled_caught and not self.triggers_done.is_set():
            logger.warning("drain deadline reached; cancelling what is left")
            return False
        return True

    async def run_triggers(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                           ) -> None:
        """Run every flow's trigger (and the alert evaluator) until :meth:`request_stop`; in-flight
        executions drain first. With a work queue, this replica's workers run beside them: they
        take the queued events of exclusive triggers, whichever replica runs the trigger."""
        try:
            async with anyio.create_task_group() as tg:
                for flow in self.project.flows.values():
                    if flow.trigger is not None:
                        self.triggers.register(flow.name, flow.trigger.name)  # "starting" at once
                        tg.start_soon(run_trigger, self.engine, flow, self.routes, self.stop_event,
                                      self.triggers, self.work_queue, name=f"trigger:{flow.name}")
                if self.work_queue is not None:
                    workers = QueueWorkers(
                        self.engine, self.work_queue,
                        queued_flows(list(self.project.flows.values()), self.registry),
                        owner=self.replica, metrics=self.resources.metrics)
                    tg.start_soon(workers.run, self.stop_event, name="queue-workers")
                if self.alerts is not None:
                    tg.start_soon(self.alerts.run, self.stop_event, name="alerts")
                if self.engine.history is not None:  # the history writer lives as long as triggers
                    tg.start_soon(self.engine.history.run, self.stop_event, list(self.project.flows),
                                  name="history-writer")
                self.sources_started.set()
                task_status.started()
        finally:
            self.triggers_done.set()
        logger.info("all triggers stopped")

    async def status(self) -> dict[str, Any]:
        """Per-connection status (API usage, token state) for ``/health`` and ``splice status``."""
        operation = CURRENT_OPERATION.set("status")  # what the probes' requests count under
        try:
            return await self._status()
        finally:
            CURRENT_OPERATION.reset(operation)

    async def _status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, client in self.engine.connections.items():
            probe = getattr(client, "status", None)
            if probe is None:
                out[name] = {"open": True}
                continue
            try:
                out[name] = await probe()
            except Exception as exc:  # a status probe must never take the server down
                out[name] = {"open": True, "error": f"{type(exc).__name__}"}
        return out


async def _open_connections(stack: AsyncExitStack, project: Project, registry: Registry,
                            store: ObjectStore, tracer: trace.Tracer, resources: RuntimeResources,
                            transports: Mapping[str, httpx.AsyncBaseTransport],
                            runtime_settings: Mapping[str, Any],
                            overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    opened: dict[str, Any] = {}
    for name, config in project.connections.items():
        connector = registry.connectors.get(config.connector)
        if connector is None or connector.connection is None:
            raise ConnectionConfigError(f"connection '{name}': no installed connector "
                                        f"'{config.connector}' takes connections")
        spec = connector.connection
        settings = dict(config.params)  # the spec's coercion fills the defaults in
        if name in overrides:  # sandbox mode: the emulator's settings; None drops a setting
            settings.update(overrides[name])
            settings = {k: v for k, v in settings.items() if v is not None}
        ctx = ConnectionContext(
            name=name, connector=config.connector, store=store,
            logger=logging.getLogger(f"splice.connector.{config.connector}"),
            tracer=tracer,
            transport=transports.get(name) or transports.get(config.connector),
            runtime_settings=runtime_settings, resources=resources,
        )
        opened[name] = await stack.enter_async_context(spec.connect(settings, ctx))
    return opened


@asynccontextmanager
async def open_runtime(
    project: Project,
    registry: Registry,
    *,
    store: ObjectStore | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    span_exporter: SpanExporter | None = None,
    tracer_provider: TracerProvider | None = None,
    runtime_settings: Mapping[str, Any] | None = None,
    connection_settings: Mapping[str, Mapping[str, Any]] | None = None,
    resources: RuntimeResources | None = None,
    time_store: bool | None = None,
    work_queue: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[SpliceRuntime]:
    """Open the store and every connection of ``project``; close them all on exit.

    ``transports`` maps a connection name (or a connector name) to an ``httpx`` transport that
    replaces the network for it: tests mount the emulators in process this way.
    ``connection_settings`` maps a connection name to settings that replace its configured ones
    (sandbox mode points connections at emulators this way; a ``None`` value removes a setting).
    ``time_store`` puts the store behind :class:`runtime.metrics.MeteredStore` (its calls' latency in
    the metrics); by default only a store the runtime opens itself is, so that a store passed in
    stays the very object its caller holds (``runtime.store is store``).
    ``work_queue``: whether exclusive triggers hand their events to the store's work queue, for the
    workers of every replica (only a store that replicas share has one); by default yes, unless
    ``$SPLICE_WORK_QUEUE`` is ``off`` in ``environ`` (the process's environment by default), which
    also may name the replica (``$SPLICE_REPLICA_ID``).

    The runtime has resources of its own (``resources``, new by default): the state its
    connections share, and its secrets, which are current until it closes, for this task and every
    task started inside the block. They also mask what was current where it was opened (the secure
    properties decrypted by :func:`load_project`), while what the runtime learns stays its own.
    """
    settings = project.settings
    recording = (tracer_provider is not None or span_exporter is not None
                 or settings.telemetry_exporter != "none")
    if tracer_provider is None:
        tracer_provider = create_tracer_provider(settings.telemetry_exporter,
                                                 endpoint=settings.otlp_endpoint,
                                                 span_exporter=span_exporter)
    # With nothing to export to, spans would be built only to be dropped: use the no-op tracer.
    tracer = get_tracer(tracer_provider) if recording else trace.NoOpTracer()
    if resources is None:
        resources = RuntimeResources(secrets=inherit_secrets())
    from runtime.alerts import flows_alerts_read, open_alerts  # not imported by `splice validate`
    from runtime.metrics import MeteredDeadLetterQueue, MeteredStore

    metrics = resources.metrics
    async with AsyncExitStack() as stack:
        stack.enter_context(use_secrets(resources.secrets))
        if time_store is None:
            time_store = store is None
        if store is None:
            store = open_store(settings.store_url)
            stack.push_async_callback(store.aclose)
        if time_store:
            store = MeteredStore.wrap(store, metrics)
        connections = await _open_connections(stack, project, registry, store, tracer, resources,
                                              transports or {}, runtime_settings or {},
                                              connection_settings or {})
        history_settings = HistorySettings.from_settings(settings.extra.get("history"))
        read_by_alerts = flows_alerts_read(settings.extra.get("alerts"))
        if read_by_alerts:  # an alert rule reads these flows' outputs from their records
            history_settings = replace(history_settings, keep_data_of=read_by_alerts)
        replica = replica_id(environ)
        history = (ExecutionRecorder(store, history_settings, replica=replica)
                   if history_settings.enabled else None)
        if history is not None:  # what the writer has not written yet is written on the way out
            stack.push_async_callback(history.close)
        engine = FlowEngine(project, registry, store=store, connections=connections,
                            tracer=tracer, logger=logging.getLogger("splice.engine"),
                            dead_letters=MeteredDeadLetterQueue(store, metrics), observer=metrics,
                            history=history)
        # Batches still gathering are sent before the connections they use close.
        stack.push_async_callback(engine.aclose)
        queue = None
        if work_queue is not False:
            queue = work_queue_for(store, {} if work_queue else environ)
        runtime = SpliceRuntime(project=project, registry=registry, store=store, engine=engine,
                                tracer_provider=tracer_provider, resources=resources,
                                replica=replica, work_queue=queue)
        metrics.triggers = runtime.triggers
        runtime.alerts = open_alerts(runtime)
        try:
            yield runtime
        finally:
            tracer_provider.force_flush()

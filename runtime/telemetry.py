"""OpenTelemetry set-up and logging, both with secrets kept out.

One flow execution is one trace: the engine opens a root span per execution and a child span per
step; :class:`runtime.transports.TracingTransport` adds a span per outbound HTTP call. The span
context rides on contextvars, which anyio copies into every task it starts, so steps run in
concurrent ``foreach`` tasks get the right parent without any plumbing.

The exporter is chosen by configuration: ``none`` (spans are still created, for tests and
``splice run``), ``console``, or ``otlp`` (needs the ``otlp`` extra).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from runtime.errors import ConfigurationError
from runtime.redaction import RedactingFilter, redact

__all__ = [
    "ATTR_CONNECTOR",
    "ATTR_CORRELATION_ID",
    "ATTR_ERROR_TYPE",
    "ATTR_FLOW",
    "ATTR_STEP",
    "TelemetryConfigError",
    "configure_logging",
    "create_tracer_provider",
    "safe_attribute",
]

ATTR_FLOW = "splice.flow"
ATTR_STEP = "splice.step"
ATTR_STEP_KIND = "splice.step.kind"
ATTR_CONNECTOR = "splice.connector"
ATTR_OPERATION = "splice.operation"
ATTR_CORRELATION_ID = "splice.correlation_id"
ATTR_ERROR_TYPE = "error.type"
ATTR_TRIGGER = "splice.trigger"

EXPORTERS = ("none", "console", "otlp")


class TelemetryConfigError(ConfigurationError):
    """The telemetry settings name an unknown exporter or a missing extra."""


def create_tracer_provider(exporter: str = "none", *, endpoint: str | None = None,
                           span_exporter: SpanExporter | None = None,
                           service_name: str = "splice") -> TracerProvider:
    """A tracer provider with the configured exporter.

    ``span_exporter`` (e.g. the SDK's ``InMemorySpanExporter``) is attached with a synchronous
    processor, which tests use to read the finished span tree.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    if exporter == "none":
        return provider
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        return provider
    if exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise TelemetryConfigError(
                "telemetry exporter 'otlp' needs the otlp extra: pip install 'splice[otlp]'"
            ) from exc
        otlp = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(otlp))
        return provider
    raise TelemetryConfigError(
        f"unknown telemetry exporter '{exporter}', expected one of {', '.join(EXPORTERS)}")


def safe_attribute(value: Any) -> str | int | float | bool:
    """A span attribute value with the current runtime's secrets masked (strings) or stringified safely."""
    if isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def configure_logging(level: str = "INFO", log_format: str = "text") -> logging.Logger:
    """The ``splice`` logger tree (and uvicorn's) writing to stderr as ``text`` or ``json`` lines
    (:mod:`runtime.logformat`), with every record passed through redaction.

    One handler serves every runtime of the process: its filter masks the secrets of the runtime
    (or command) each record is written in, found through the context of the logging call, and
    another one adds the execution the call runs in. Calling it again switches level and format.
    """
    from runtime.logformat import ExecutionFilter, make_formatter

    formatter = make_formatter(log_format)
    logger = logging.getLogger("splice")
    logger.setLevel(level.upper())
    handler = next((h for h in logger.handlers if getattr(h, "_splice", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(RedactingFilter())
        handler.addFilter(ExecutionFilter())
        handler._splice = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    handler.setFormatter(formatter)
    logger.propagate = False
    # The HTTP server's own lines (uvicorn is started without a logging config of its own) take
    # the same way, so that a JSON log holds nothing but JSON lines.
    server = logging.getLogger("uvicorn")
    if handler not in server.handlers:
        server.addHandler(handler)
    server.propagate = False
    return logger


def get_tracer(provider: TracerProvider | None) -> trace.Tracer:
    """The runtime's tracer from ``provider`` (or the global one)."""
    if provider is None:
        return trace.get_tracer("splice")
    return provider.get_tracer("splice")

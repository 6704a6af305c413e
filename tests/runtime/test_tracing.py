"""One trace per execution; step and HTTP spans hang under the right parents, even in concurrent tasks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runtime.message import Event

pytestmark = pytest.mark.anyio

CONNECTIONS = """
connections:
  t: { connector: test, token: s3cr3t-token-value }
  sink: { connector: http, base-url: "http://sink.local", bearer-token: bearer-s3cr3t-value }
"""


def sink_app() -> Starlette:
    async def invoices(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"id": f"inv-{body['n']}"}, status_code=201)

    async def broken(request: Request) -> JSONResponse:
        return JSONResponse({"fault": "down"}, status_code=500)

    return Starlette(routes=[Route("/invoices", invoices, methods=["POST"]),
                             Route("/broken", broken, methods=["GET"])])


async def test_span_tree_of_concurrent_foreach(start: Any) -> None:
    flow = """
    flow: traced
    steps:
      - foreach:
          collection: "#[payload.items]"
          concurrency: 4
          steps:
            - http.request: { method: POST, path: /invoices, body: { n: "#[payload]" } }
    """
    transports = {"sink": httpx.ASGITransport(app=sink_app())}
    async with start({"traced.yaml": flow}, connections=CONNECTIONS, transports=transports) as h:
        outcome = await h.runtime.engine.run("traced", Event(payload={"items": [1, 2, 3, 4, 5]}))
        spans = h.spans.get_finished_spans()
    assert outcome.message.payload == [{"id": f"inv-{i}"} for i in range(1, 6)]

    by_id = {s.context.span_id: s for s in spans}
    [root] = [s for s in spans if s.name == "flow traced"]
    assert root.parent is None
    assert root.attributes["splice.flow"] == "traced"
    assert root.attributes["splice.correlation_id"] == outcome.message.correlation_id
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}

    [foreach] = [s for s in spans if s.attributes.get("splice.step.kind") == "foreach"]
    assert foreach.parent.span_id == root.context.span_id
    requests = [s for s in spans if s.attributes.get("splice.step.kind") == "http.request"]
    assert len(requests) == 5
    assert all(s.parent.span_id == foreach.context.span_id for s in requests)
    assert all(s.attributes["splice.connector"] == "http" for s in requests)
    http_spans = [s for s in spans if s.name == "POST /invoices"]
    assert len(http_spans) == 5
    assert {by_id[s.parent.span_id].attributes["splice.step.kind"] for s in http_spans} == {
        "http.request"}
    assert all(s.attributes["http.response.status_code"] == 201 for s in http_spans)

    dumped = repr([(s.name, dict(s.attributes or {})) for s in spans])
    assert "s3cr3t" not in dumped


async def test_failed_step_span_carries_error_type(start: Any) -> None:
    flow = """
    flow: failing
    steps:
      - http.request: { path: /broken }
    """
    transports = {"sink": httpx.ASGITransport(app=sink_app())}
    async with start({"f.yaml": flow}, connections=CONNECTIONS, transports=transports) as h:
        outcome = await h.runtime.engine.run("failing", Event(payload=None))
        spans = h.spans.get_finished_spans()
    assert outcome.error is not None
    assert outcome.error.error_type == "HTTP:INTERNAL_SERVER_ERROR"
    [step] = [s for s in spans if s.attributes.get("splice.step.kind") == "http.request"]
    assert step.attributes["error.type"] == "HTTP:INTERNAL_SERVER_ERROR"
    [root] = [s for s in spans if s.name == "flow failing"]
    assert root.attributes["error.type"] == "HTTP:INTERNAL_SERVER_ERROR"
    # GET is idempotent: the transport retried the 500 before giving up
    assert len([s for s in spans if s.name == "GET /broken"]) == 3


def test_console_exporter_prints_finished_spans(capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.telemetry import create_tracer_provider

    provider = create_tracer_provider("console")
    with provider.get_tracer("t").start_as_current_span("flow demo"):
        pass
    provider.shutdown()
    assert '"name": "flow demo"' in capsys.readouterr().err


def test_unknown_exporter_is_refused() -> None:
    from runtime.telemetry import TelemetryConfigError, create_tracer_provider

    with pytest.raises(TelemetryConfigError, match="unknown telemetry exporter 'zipkin'"):
        create_tracer_provider("zipkin")

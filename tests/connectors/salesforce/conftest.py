"""Fixtures for the salesforce connector: an in-process emulator, a store, an open client,
a recording source context, and the cassette filters."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.emulator import create_app
from connectors.salesforce.plugin import CONNECTOR
from runtime.context import ConnectionContext, OperationContext
from runtime.message import Event, Message, OutcomeStatus
from runtime.redaction import secret_values
from runtime.resources import RuntimeResources
from runtime.store import ObjectStore
from runtime.testing import RecordingSourceContext as BaseRecordingSourceContext

#: Every host a cassette may show, whatever org it was recorded against.
PLACEHOLDER_HOST = "acme.my.salesforce.com"
_HOSTS = re.compile(r"[A-Za-z0-9.-]+\.(?:my\.)?salesforce\.com|[A-Za-z0-9.-]+\.force\.com")
_TOKEN_FIELDS = ("access_token", "refresh_token", "signature", "id_token")


def _scrub(text: str) -> str:
    text = _HOSTS.sub(PLACEHOLDER_HOST, text)
    for secret in secret_values():
        text = text.replace(secret, "REDACTED")
    return text


def _request(request: Any) -> Any:
    parts = urlsplit(request.uri)
    if parts.hostname and parts.hostname not in ("127.0.0.1", "localhost"):
        request.uri = request.uri.replace(parts.netloc, PLACEHOLDER_HOST, 1)
    return request


def _response(response: dict[str, Any]) -> dict[str, Any]:
    body = response.get("content")
    key = "content"
    if body is None:
        body, key = response.get("body", {}).get("string"), "string"
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            for name in _TOKEN_FIELDS:
                if name in data:
                    data[name] = "REDACTED"
            body = json.dumps(data)
        body = _scrub(body)
        if key == "content":
            response["content"] = body
        else:
            response["body"]["string"] = body.encode()
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in ("set-cookie", "location", "content-length"):
            headers.pop(name)
    return response


def vcr_settings() -> dict[str, Any]:
    """The ``vcr_config`` of the salesforce tests."""
    return {
        "filter_headers": ["authorization", "cookie", "x-sfdc-session"],
        "filter_post_data_parameters": ["client_secret", "refresh_token", "assertion", "code",
                                        "client_id", "password"],
        "before_record_request": _request,
        "before_record_response": _response,
        "decode_compressed_response": True,
    }


INSTANCE = "https://acme.my.salesforce.com"
SETTINGS: dict[str, Any] = {"auth": "client-credentials", "login-url": INSTANCE,
                            "client-id": "test-client-id", "client-secret": "test-client-secret-1",
                            "retry-delay": "10ms"}


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    """Cassettes never hold tokens, secrets, cookies or the real instance host."""
    return vcr_settings()


@pytest.fixture
def app() -> Any:
    """A fresh emulator with small pages so paging is exercised."""
    return create_app(page_size=5, long_poll_timeout=0.2, bulk_polls=1)


def connection_context(app: Any, store: ObjectStore, name: str = "sf",
                       resources: RuntimeResources | None = None) -> ConnectionContext:
    """A connection context whose HTTP goes to ``app`` in process (of the runtime owning
    ``resources``; without them, of a runtime of its own)."""
    return ConnectionContext(name=name, connector="salesforce", store=store,
                             logger=logging.getLogger("splice.test.salesforce"),
                             tracer=trace.get_tracer("test"), transport=httpx.ASGITransport(app=app),
                             resources=resources or RuntimeResources())


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """Reads the metrics of the ``client`` fixture's runtime."""
    return InMemoryMetricReader()


def gauge_points(reader: InMemoryMetricReader, name: str) -> list[tuple[str, str, Any]]:
    """``(runtime id, connection, value)`` of every data point of one gauge that ``reader`` reads."""
    points: list[tuple[str, str, Any]] = []
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            runtime = str((scope.scope.attributes or {}).get("splice.runtime"))
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:  # type: ignore[union-attr]
                    connection = str((point.attributes or {}).get("splice.connection"))
                    points.append((runtime, connection, point.value))  # type: ignore[union-attr]
    return points


@pytest.fixture
async def client(app: Any, store: ObjectStore,
                 metric_reader: InMemoryMetricReader) -> AsyncIterator[SalesforceClient]:
    """An open SalesforceClient against the emulator (client credentials flow)."""
    resources = RuntimeResources(meter_provider=MeterProvider(metric_readers=[metric_reader]))
    async with CONNECTOR.connection.connect(dict(SETTINGS),
                                            connection_context(app, store, resources=resources)) as c:
        yield c


def operation_context(client: SalesforceClient, store: ObjectStore, payload: Any = None) -> OperationContext:
    """What the engine hands an operation handler."""
    return OperationContext(flow="test-flow", path="flow/test-flow/steps/0", message=Message(payload=payload),
                            store=store, logger=logging.getLogger("splice.test.salesforce"),
                            tracer=trace.get_tracer("test"), connection=client, connection_name="sf")


class RecordingSourceContext(BaseRecordingSourceContext):
    """The recording source context on a Salesforce client, stopping after ``polls`` sleeps (or
    once ``stop_after`` events were recorded); sleeps are short, and ``on_sleep(n)`` runs after each.

    ``fail`` maps event ids to how many times their handling should fail before succeeding.
    """

    def __init__(self, client: Any, store: ObjectStore, *, polls: int = 1, state: Any = None,
                 fail: dict[str, int] | None = None, stop_after: int | None = None) -> None:
        super().__init__(store, connection=client, connection_name="sf", state=state,
                         outcome=self._fail_first)
        self.polls = polls
        self.sleeps = 0
        self.fail = dict(fail or {})
        self.on_sleep: Any = None
        self.stop_after = stop_after

    def _fail_first(self, event: Event) -> OutcomeStatus:
        if self.fail.get(str(event.id), 0) > 0:
            self.fail[str(event.id)] -= 1
            return "failed"
        return "completed"

    @property
    def stopping(self) -> bool:
        if self.stop_after is not None:
            return len(self.events) >= self.stop_after
        return self.sleeps >= self.polls

    async def sleep(self, seconds: float) -> bool:
        self.sleeps += 1
        await anyio.sleep(min(seconds, 0.01))
        if self.on_sleep is not None:
            await self.on_sleep(self.sleeps)
        return not self.stopping


@pytest.fixture
def make_connection_context() -> Any:
    """``make_connection_context(app, store, name="sf")``."""
    return connection_context


@pytest.fixture
def op_ctx(client: SalesforceClient, store: ObjectStore) -> OperationContext:
    """An operation context on the test client."""
    return operation_context(client, store)


@pytest.fixture
def source_context() -> type[RecordingSourceContext]:
    """The recording SourceContext class."""
    return RecordingSourceContext


@pytest.fixture
def op_ctx_factory(store: ObjectStore) -> Any:
    """``op_ctx_factory(client)``: an operation context on any client."""
    return lambda client: operation_context(client, store)

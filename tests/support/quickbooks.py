"""Helpers of the quickbooks connector tests: a connection to the emulator, operation calls."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from opentelemetry import trace

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.emulator import DEFAULT_REALM
from connectors.quickbooks.operations import OPERATIONS
from connectors.quickbooks.plugin import CONNECTOR
from runtime.context import ConnectionContext, OperationContext
from runtime.message import Event, Message, Outcome, OutcomeStatus
from runtime.params import compile_params
from runtime.resources import RuntimeResources
from runtime.store import ObjectStore
from runtime.testing import RecordingSourceContext

REALM = DEFAULT_REALM
SEED_REFRESH_TOKEN = "RT-seed-0000000000000001"
BASE = "http://quickbooks.test"
CLIENT_ID = "emulator-client"
CLIENT_SECRET = "emulator-secret"
RECORDED_REALM = "1234567890"


def qb_settings(**overrides: Any) -> dict[str, Any]:
    """Connection settings pointing at the in-process emulator."""
    settings = {"client-id": CLIENT_ID, "client-secret": CLIENT_SECRET, "realm-id": REALM,
                "refresh-token": SEED_REFRESH_TOKEN, "base-url": BASE,
                "token-url": f"{BASE}/oauth2/v1/tokens/bearer", "minor-version": 75,
                "webhook-verifier-token": "emulator-verifier"}
    settings.update(overrides)
    return settings


def connection_context(app: Any, store: ObjectStore,
                       resources: RuntimeResources | None = None) -> ConnectionContext:
    """What the runtime gives ``ConnectionSpec.open``; the emulator ``app`` (if any) is the network.

    Without ``resources`` the connection has a runtime's resources to itself; connections given the
    same ``resources`` are connections of one runtime.
    """
    return ConnectionContext(name="quickbooks", connector="quickbooks", store=store,
                             logger=logging.getLogger("splice.test.quickbooks"),
                             tracer=trace.get_tracer("splice.test"),
                             transport=httpx.ASGITransport(app=app) if app is not None else None,
                             resources=resources or RuntimeResources())


@asynccontextmanager
async def connect(app: Any, store: ObjectStore, *, resources: RuntimeResources | None = None,
                  **overrides: Any) -> AsyncIterator[QuickBooksClient]:
    """An open quickbooks connection to ``app`` (of the runtime owning ``resources``, when given)."""
    assert CONNECTOR.connection is not None
    async with CONNECTOR.connection.connect(qb_settings(**overrides),
                                            connection_context(app, store, resources)) as client:
        yield client


def op_context(client: QuickBooksClient | None, store: ObjectStore, payload: Any = None) -> OperationContext:
    """The context of one step execution."""
    return OperationContext(flow="test-flow", path="flow/test-flow/steps/0",
                            message=Message(payload=payload), store=store,
                            logger=logging.getLogger("splice.test.quickbooks"),
                            tracer=trace.get_tracer("splice.test"), connection=client,
                            connection_name="quickbooks")


async def run_op(name: str, client: QuickBooksClient, store: ObjectStore, payload: Any = None,
                 **params: Any) -> Any:
    """Call an operation the way the engine does: defaults filled in and values typed (the
    operation's ``coerce``), dashed parameter names."""
    spec = next(op for op in OPERATIONS if op.name == name)
    rendered = spec.coerce({k.replace("_", "-"): v for k, v in params.items()})
    return await spec.handler(op_context(client, store, payload), rendered)


def typed_settings(**overrides: Any) -> dict[str, Any]:
    """:func:`qb_settings` as the connection's ``open`` gets them: defaults filled in, typed."""
    assert CONNECTOR.connection is not None
    return CONNECTOR.connection.coerce(qb_settings(**overrides))


def source_params(name: str, **params: Any) -> dict[str, Any]:
    """A source's parameters as the runtime hands them to its ``run`` (dashed names)."""
    spec = next(s for s in CONNECTOR.sources if s.name == name)
    return compile_params(spec.params)({k.replace("_", "-"): v for k, v in params.items()})


class FakeSourceContext(RecordingSourceContext):
    """The recording source context on a QuickBooks client; ``gate`` (an anyio.Event), when given,
    holds every ``handle`` until it is set, to show that a webhook is answered before the flow runs.
    """

    def __init__(self, client: QuickBooksClient | None, store: ObjectStore, *,
                 outcome: Callable[[Event], OutcomeStatus] | None = None,
                 gate: anyio.Event | None = None) -> None:
        super().__init__(store, connection=client, connection_name="quickbooks", flow="qb-flow",
                         outcome=outcome)
        self._gate = gate

    async def handle(self, event: Event, *, dead_letter_failures: bool = True) -> Outcome:
        if self._gate is not None:
            await self._gate.wait()
        return await super().handle(event, dead_letter_failures=dead_letter_failures)

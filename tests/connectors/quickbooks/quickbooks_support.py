"""Helpers shared by the quickbooks connector tests (imported by conftest and test modules)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from opentelemetry import trace

from connectors.quickbooks.client import QuickBooksClient, open_connection
from connectors.quickbooks.emulator import DEFAULT_REALM
from connectors.quickbooks.operations import OPERATIONS
from runtime.context import ConnectionContext, OperationContext
from runtime.message import Message
from runtime.store import ObjectStore

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


def connection_context(app: Any, store: ObjectStore, *,
                       transport: httpx.AsyncBaseTransport | None = None) -> ConnectionContext:
    """What the runtime gives ``ConnectionSpec.open``, with the emulator as the network."""
    return ConnectionContext(name="quickbooks", connector="quickbooks", store=store,
                             logger=logging.getLogger("splice.test.quickbooks"),
                             tracer=trace.get_tracer("splice.test"),
                             transport=transport or httpx.ASGITransport(app=app))


@asynccontextmanager
async def connect(app: Any, store: ObjectStore, **overrides: Any) -> AsyncIterator[QuickBooksClient]:
    """An open quickbooks connection to ``app``."""
    async with open_connection(qb_settings(**overrides), connection_context(app, store)) as client:
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
    """Call an operation the way the engine does: defaults filled in, dashed parameter names."""
    spec = next(op for op in OPERATIONS if op.name == name)
    rendered = {p.name: p.default for p in spec.params if p.default is not None}
    rendered.update({k.replace("_", "-"): v for k, v in params.items()})
    return await spec.handler(op_context(client, store, payload), rendered)

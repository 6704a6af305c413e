"""The ``salesforce`` connector: connection, operations, sources and emulator, as one plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.config import CONNECTION_PARAMS, SalesforceSettings
from connectors.salesforce.operations import OPERATIONS
from connectors.salesforce.sources import SOURCES
from runtime import ConnectionContext, ConnectionSpec, Connector, hookimpl

__all__ = ["open_connection", "splice_connectors"]


@asynccontextmanager
async def open_connection(settings: dict[str, Any], ctx: ConnectionContext) -> AsyncIterator[SalesforceClient]:
    """Open a connection: parse settings, build the client; no network call until first use."""
    client = SalesforceClient(SalesforceSettings.from_settings(settings), ctx)
    try:
        yield client
    finally:
        await client.aclose()


CONNECTOR = Connector(
    name="salesforce",
    summary="Salesforce REST, Bulk API 2.0 and Change Data Capture",
    connection=ConnectionSpec(params=CONNECTION_PARAMS, open=open_connection,
                              summary="One Salesforce org reached through an OAuth 2.0 connected app"),
    operations=OPERATIONS,
    sources=SOURCES,
    # By reference: the emulator is imported when a sandbox starts, not by every command.
    sandbox="connectors.salesforce.sandbox:SANDBOX",
)


@hookimpl
def splice_connectors() -> list[Connector]:
    """The salesforce connector."""
    return [CONNECTOR]

"""The quickbooks connector plugin: QuickBooks Online Accounting API v3.

Registered under the ``splice.connectors`` entry point like any third-party connector. It
contributes the connection (OAuth 2.0 with refresh-token rotation, per-realm rate limits), the
operations of :mod:`.operations` and :mod:`.sending`, the ``webhook`` and ``changes`` sources, the emulator for
``splice sandbox quickbooks`` and sandbox mode (:mod:`.sandbox`), and the ``splice quickbooks-connect`` command for the first
authorization of a company.
"""

from __future__ import annotations

from typing import Any

from connectors.quickbooks.client import open_connection
from connectors.quickbooks.config import CONNECTION_PARAMS
from connectors.quickbooks.operations import OPERATIONS
from connectors.quickbooks.sending import SENDING_OPERATIONS
from connectors.quickbooks.sources import SOURCES
from runtime import ConnectionSpec, Connector, hookimpl

__all__ = ["CONNECTOR", "splice_cli", "splice_connectors"]

CONNECTOR = Connector(
    name="quickbooks",
    summary="QuickBooks Online Accounting API v3 (OAuth 2.0, rate limited per realm)",
    connection=ConnectionSpec(params=CONNECTION_PARAMS, open=open_connection,
                              summary="One QuickBooks company (realm) of one Intuit app"),
    operations=(*OPERATIONS, *SENDING_OPERATIONS),
    sources=SOURCES,
    # By reference: the emulator is imported when a sandbox starts, not by every command.
    sandbox="connectors.quickbooks.sandbox:SANDBOX",
)


@hookimpl
def splice_connectors() -> list[Connector]:
    """The quickbooks connector."""
    return [CONNECTOR]


@hookimpl
def splice_cli(subparsers: Any) -> None:
    """``splice quickbooks-connect``: the first authorization of a company."""
    from connectors.quickbooks.connect import add_parser

    add_parser(subparsers)

"""What every QuickBooks operation reads from its step the same way: the connection's client, the
entity name and the record to write. The operations and their dry-run previews share these, so a
preview refuses exactly what the write would."""

from __future__ import annotations

from typing import Any

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.errors import quickbooks_error
from runtime import OperationContext

__all__ = ["step_client", "step_entity", "step_record"]


def step_client(ctx: OperationContext) -> QuickBooksClient:
    """The step's QuickBooks client (``QUICKBOOKS:CONNECTION`` when it has another connection)."""
    client = ctx.connection
    if not isinstance(client, QuickBooksClient):
        raise quickbooks_error("CONNECTION", "this step needs a quickbooks connection")
    return client


def step_entity(params: dict[str, Any]) -> str:
    """The ``entity`` parameter as the API names it (``invoice`` -> ``Invoice``)."""
    name = str(params["entity"]).strip()
    return name[:1].upper() + name[1:]


def step_record(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """A copy of the ``record`` parameter, else of the payload; it must be an object."""
    record = params.get("record")
    if record is None:
        record = ctx.message.payload
    if not isinstance(record, dict):
        raise quickbooks_error("VALIDATION", "the record to write must be an object")
    return dict(record)

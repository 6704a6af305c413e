"""``quickbooks.find-or-create`` for Customers and Items, safe when two flows race.

Lookup first: by an external key remembered in the object store (a Salesforce Account Id, say),
then by the match field (DisplayName, Name or Sku), including inactive rows, which still hold
their name (an inactive match is made active again). Only then create, with a ``requestid``
derived from the match value so two racing creates of one name are the same request, sent by
:func:`connectors.quickbooks.creates.create_record` (a lost answer is looked up by name, not sent
again blindly). If QuickBooks still answers 6240 (duplicate name), the record that won is looked
up and returned.
"""

from __future__ import annotations

from typing import Any

import anyio

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.creates import create_record
from connectors.quickbooks.errors import quickbooks_error
from connectors.quickbooks.query import quote
from connectors.quickbooks.writes import apply_update, once, writable
from runtime import OperationContext, SpliceError

__all__ = ["XREF_NAMESPACE", "find_or_create"]

#: ``{realm}:{entity}:{external key}`` -> ``{"id": ...}``.
XREF_NAMESPACE = "quickbooks-xref"
_NAME_FIELD = {"Customer": "DisplayName", "Item": "Name"}
_ATTEMPTS = 5


def _field(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


async def _find(client: QuickBooksClient, entity: str, field: str, value: Any) -> dict[str, Any] | None:
    sql = (f"select * from {entity} where {field} = {quote(value)} and Active in (true, false)"
           " MAXRESULTS 2")
    rows = (await client.query_page(sql)).get(entity) or []
    if not rows:
        return None
    row: dict[str, Any] = rows[0]
    if row.get("Active") is False:
        row = await apply_update(client, entity, {"Id": row["Id"], "SyncToken": row["SyncToken"],
                                                  "Active": True})
    return row


async def _create(ctx: OperationContext, client: QuickBooksClient, entity: str,
                  record: dict[str, Any], params: dict[str, Any], match_by: str,
                  value: Any) -> dict[str, Any]:
    # The same name gives the same requestid: two racing creates are one request to QuickBooks.
    key = params.get("idempotency-key") or f"foc:{entity}:{match_by}:{value}"
    body = writable(record, entity)
    body.pop("Id", None)
    created: dict[str, Any] = await once(
        ctx, client.realm_id, f"create:{entity}:{key}",
        lambda: create_record(ctx, client, entity, body, str(key)))
    return created


async def find_or_create(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """The existing record matching ``record``, or a new one."""
    client = ctx.connection
    if not isinstance(client, QuickBooksClient):
        raise quickbooks_error("CONNECTION", "this step needs a quickbooks connection")
    entity = str(params["entity"])  # Customer or Item: the runtime checks the enum
    record = params.get("record") if params.get("record") is not None else ctx.message.payload
    if not isinstance(record, dict):
        raise quickbooks_error("VALIDATION", "the record to find or create must be an object")
    name_field = _NAME_FIELD[entity]
    match_by = str(params.get("match-by") or name_field)
    value = _field(record, match_by)
    if value in (None, ""):
        raise quickbooks_error("VALIDATION", f"the record has no {match_by} to match on")
    external = params.get("external-key")
    xref_key = f"{client.realm_id}:{entity}:{external}" if external else None
    if xref_key:
        known = await ctx.store.get(XREF_NAMESPACE, xref_key)
        if known:
            try:
                return await client.read(entity, str(known["id"]))
            except SpliceError as exc:
                if exc.error_type != "QUICKBOOKS:NOT_FOUND":
                    raise
    found = None
    for attempt in range(_ATTEMPTS):
        found = await _find(client, entity, match_by, value)
        if found is not None:
            break
        try:
            found = await _create(ctx, client, entity, record, params, match_by, value)
            break
        except SpliceError as exc:
            if exc.error_type == "QUICKBOOKS:IN_PROGRESS" and attempt + 1 < _ATTEMPTS:
                await anyio.sleep(0.1 * (attempt + 1))  # a peer is creating it: look again
                continue
            if exc.error_type != "QUICKBOOKS:DUPLICATE_NAME":
                raise
            # Somebody created it between our lookup and our create: theirs is the one.
            found = await _find(client, entity, name_field, record.get(name_field))
            if found is None:
                raise
            break
    assert found is not None
    if xref_key:
        await ctx.store.put(XREF_NAMESPACE, xref_key, {"id": found["Id"]})
    ctx.annotate(entity=entity, record_id=str(found["Id"]))
    return found

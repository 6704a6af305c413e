"""Dry runs of the QuickBooks writes: what each would send, and a stand-in for its answer.

A preview builds the body exactly as the write would (the same :func:`writable`, the same sparse
flag, the SyncToken read when none is given: reads are allowed) and tells it with
``ctx.would_write``; it sends nothing and records no ledger entry. The stand-in is the entity as
sent, a created one with ``Id`` ``"(dry-run)"``, so later steps (a write-back of the invoice id and
number) run and can be previewed too.
"""

from __future__ import annotations

from typing import Any

from connectors.quickbooks.batch import BATCH_SIZE, build_item
from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.errors import quickbooks_error
from connectors.quickbooks.steps import step_client, step_entity, step_record
from connectors.quickbooks.writes import writable
from runtime import DRY_RUN_ID, OperationContext

__all__ = [
    "batch_writes",
    "preview_batch",
    "preview_create",
    "preview_delete",
    "preview_update",
    "preview_void",
]

#: Name lists cannot be deleted in QuickBooks; ``delete`` makes them inactive.
_NAME_LISTS = frozenset({"Customer", "Vendor", "Employee", "Item", "Account", "Term", "Class",
                         "Department", "PaymentMethod", "TaxCode"})
_VOID_BY_UPDATE = frozenset({"Payment", "SalesReceipt", "BillPayment"})





async def _sync_token(client: QuickBooksClient, entity: str, record: dict[str, Any]) -> str:
    if record.get("SyncToken") not in (None, ""):
        return str(record["SyncToken"])
    return str((await client.read(entity, str(record["Id"])))["SyncToken"])


async def preview_create(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """``quickbooks.create``: the body it would POST; the stand-in is that body with a placeholder Id."""
    entity = step_entity(params)
    body = writable(step_record(ctx, params), entity)
    body.pop("Id", None)
    body.pop("SyncToken", None)
    if not params.get("idempotency-key"):
        raise quickbooks_error("VALIDATION", "quickbooks.create needs an idempotency-key")
    ctx.would_write("create", {"entity": entity}, body)
    return {**body, "Id": DRY_RUN_ID, "SyncToken": "0"}


async def preview_update(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """``quickbooks.update``: the sparse (or full) body it would POST, the SyncToken read if needed."""
    client, entity = step_client(ctx), step_entity(params)
    record = step_record(ctx, params)
    if not record.get("Id"):
        raise quickbooks_error("VALIDATION", f"an update of {entity} needs the record's Id")
    ours = {k: v for k, v in writable(record, entity).items()
            if k not in ("Id", "SyncToken", "sparse")}
    if params["sparse"]:
        body = {"Id": str(record["Id"]), "SyncToken": await _sync_token(client, entity, record),
                **ours, "sparse": True}
        base: dict[str, Any] = {}
    else:
        base = await client.read(entity, str(record["Id"]))
        body = {**writable(base, entity), **ours, "Id": str(record["Id"]),
                "SyncToken": str(base["SyncToken"]), "sparse": False}
    ctx.would_write("update", {"entity": entity, "id": str(record["Id"])}, body)
    return {**base, **{k: v for k, v in body.items() if k != "sparse"}}


async def preview_delete(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """``quickbooks.delete``: the delete (or, for a name list, the deactivation) it would send."""
    client, entity = step_client(ctx), step_entity(params)
    record = {"Id": str(params["id"]), "SyncToken": params.get("sync-token")}
    record["SyncToken"] = await _sync_token(client, entity, record)
    if entity in _NAME_LISTS:
        body = {**record, "Active": False, "sparse": True}
        ctx.would_write("deactivate", {"entity": entity, "id": record["Id"]}, body)
        return {**record, "Active": False}
    ctx.would_write("delete", {"entity": entity, "id": record["Id"]}, record)
    return {**record, "status": "Deleted"}


async def preview_void(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """``quickbooks.void``: the void it would send."""
    client, entity = step_client(ctx), step_entity(params)
    record = {"Id": str(params["id"]), "SyncToken": params.get("sync-token")}
    record["SyncToken"] = await _sync_token(client, entity, record)
    body = {**record, "sparse": True} if entity in _VOID_BY_UPDATE else record
    ctx.would_write("void", {"entity": entity, "id": record["Id"]}, body)
    return dict(record)


def batch_writes(params: Any) -> bool:
    """Unless every item is a query."""
    items = params.get("items")
    if not isinstance(items, list):
        return True  # the payload: not known until the call, so previewed
    return not all(isinstance(i, dict) and ("query" in i or "Query" in i) for i in items)


async def preview_batch(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """``quickbooks.batch``: its queries are run one by one; each write item is told, not sent."""
    client = step_client(ctx)
    items = params.get("items")
    if items is None:
        items = ctx.message.payload
    if not isinstance(items, list):
        raise quickbooks_error("VALIDATION", "batch items must be a list")
    results: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        built, operation, entity = await build_item(client, item, str(index % BATCH_SIZE))
        out: dict[str, Any] = {"index": index, "bId": built["bId"], "operation": operation,
                               "entity": entity, "ok": True}
        if operation == "query":
            response = await client.query_page(built["Query"])
            rows = next((v for k, v in response.items() if isinstance(v, list)), [])
            results.append({**out, "records": rows, "totalCount": response.get("totalCount")})
            continue
        body = built[entity]
        ctx.would_write(operation, {"entity": entity, "id": body.get("Id")}, body)
        stand_in = {**body, "Id": body.get("Id") or DRY_RUN_ID}
        stand_in.pop("sparse", None)
        results.append({**out, "record": stand_in})
    return results

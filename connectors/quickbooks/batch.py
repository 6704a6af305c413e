"""``quickbooks.batch``: many writes in ``POST /batch`` calls of at most 30 items each.

Each item gets its own answer mapped back to its input position: the entity, the query rows, or
its fault as a typed error (``QUICKBOOKS:DUPLICATE_NAME``, ``QUICKBOOKS:STALE_OBJECT``...). Batch
calls have their own, smaller per-realm budget (40 a minute), which the client's rate limit
applies. Every chunk carries a ``requestid`` (at most 36 characters for batch) and is recorded in
the ledger, so a replayed event does not send a chunk that already went through.
"""

from __future__ import annotations

from typing import Any

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.errors import error_from_faults, faults_in, quickbooks_error
from connectors.quickbooks.query import render
from connectors.quickbooks.steps import step_client
from connectors.quickbooks.writes import once, request_id, writable
from runtime import OperationContext

__all__ = ["BATCH_SIZE", "batch_operation", "build_item"]

BATCH_SIZE = 30
_VOID_BY_UPDATE = frozenset({"Payment", "SalesReceipt", "BillPayment"})


async def build_item(client: QuickBooksClient, item: Any, bid: str) -> tuple[dict[str, Any], str, str]:
    """The ``BatchItemRequest`` entry for one input item, with its operation and entity."""
    if not isinstance(item, dict):
        raise quickbooks_error("VALIDATION", "every batch item must be an object")
    if "query" in item or "Query" in item:
        text = render(str(item.get("query") or item.get("Query")), item.get("binds") or {})
        return {"bId": bid, "Query": text}, "query", ""
    operation = str(item.get("operation") or "create").lower()
    entity = str(item.get("entity") or "")
    if not entity:
        raise quickbooks_error("VALIDATION", "a batch write item needs an entity")
    record = writable(item.get("record") or {}, entity)
    if operation != "create" and record.get("Id") and not record.get("SyncToken"):
        record["SyncToken"] = (await client.read(entity, str(record["Id"])))["SyncToken"]
    if operation == "create":
        record.pop("Id", None)
        return {"bId": bid, "operation": "create", entity: record}, operation, entity
    if operation == "update":
        record.setdefault("sparse", True)
        return {"bId": bid, "operation": "update", entity: record}, operation, entity
    body = {"Id": record.get("Id"), "SyncToken": record.get("SyncToken")}
    if operation == "delete":
        return {"bId": bid, "operation": "delete", entity: body}, operation, entity
    if operation == "void":
        if entity in _VOID_BY_UPDATE:
            body["sparse"] = True
        return ({"bId": bid, "operation": "update", "optionsData": "void", entity: body},
                operation, entity)
    raise quickbooks_error("VALIDATION", f"unknown batch operation {operation!r}")


def _result(index: int, bid: str, operation: str, entity: str, answer: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "bId": bid, "operation": operation, "entity": entity}
    if answer is None:
        error = quickbooks_error("SERVER_ERROR", "the batch answer has no entry for this item",
                                 retryable=True)
        return {**out, "ok": False, "error": error.to_dict()}
    faults = faults_in(answer)
    if faults:
        return {**out, "ok": False, "error": error_from_faults(faults).to_dict()}
    if operation == "query":
        response = answer.get("QueryResponse") or {}
        rows = next((v for v in response.values() if isinstance(v, list)), [])
        return {**out, "ok": True, "records": rows, "totalCount": response.get("totalCount")}
    return {**out, "ok": True, "record": answer.get(entity)}


async def batch_operation(ctx: OperationContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Results in input order: ``{index, ok, record | records | error}`` per item."""
    client = step_client(ctx)
    items = params.get("items")
    if items is None:
        items = ctx.message.payload
    if not isinstance(items, list):
        raise quickbooks_error("VALIDATION", "batch items must be a list")
    key = params.get("idempotency-key")
    if not key and any(isinstance(i, dict) and str(i.get("operation") or "create").lower() == "create"
                       and "query" not in i and "Query" not in i for i in items):
        raise quickbooks_error("VALIDATION", "a batch that creates needs an idempotency-key")
    results: list[dict[str, Any]] = []
    for chunk_no, start in enumerate(range(0, len(items), BATCH_SIZE)):
        chunk = items[start:start + BATCH_SIZE]
        chunk_key = f"{key}:{chunk_no}" if key else None

        async def send(chunk: list[Any] = chunk, start: int = start,
                       chunk_key: str | None = chunk_key) -> list[dict[str, Any]]:
            built = [await build_item(client, item, str(i)) for i, item in enumerate(chunk)]
            answers = await client.batch([b[0] for b in built],
                                         request_id=request_id(chunk_key, 36) if chunk_key else None)
            by_bid = {str(a.get("bId")): a for a in answers}
            return [_result(start + i, str(i), op, entity, by_bid.get(str(i)))
                    for i, (_, op, entity) in enumerate(built)]

        results.extend(await once(ctx, client.realm_id,
                                  f"batch:{chunk_key}" if chunk_key else None, send))
    failed = [r for r in results if not r["ok"]]
    ctx.annotate(items=len(results), failed=len(failed))
    if failed and params.get("raise-on-fault"):
        raise quickbooks_error("BATCH_ITEMS_FAILED", f"{len(failed)} of {len(results)} batch items "
                               "failed", details={"failed": [{"index": r["index"], **r["error"]}
                                                             for r in failed]})
    return results

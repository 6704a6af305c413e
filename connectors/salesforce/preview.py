"""Dry runs of the Salesforce writes: the body each would send, and a stand-in for its answer.

Bodies are built as the client builds them (``attributes`` and the keys Salesforce refuses in that
position dropped); nothing is sent. Stand-ins have Salesforce's answer shapes (``{id, success,
errors}``), with ``"(dry-run)"`` where Salesforce would have made up a new Id.
"""

from __future__ import annotations

from typing import Any

from connectors.salesforce.client import writable_fields
from connectors.salesforce.composite import _prepare
from connectors.salesforce.targets import update_id, upsert_key
from runtime import DRY_RUN_ID, OperationContext

__all__ = [
    "preview_collections",
    "preview_create",
    "preview_delete",
    "preview_update",
    "preview_upsert",
]


async def preview_create(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """``salesforce.create``: the record it would POST."""
    ctx.would_write("create", {"object": params["object"]}, writable_fields(params["record"], drop=("Id",)))
    return {"id": DRY_RUN_ID, "success": True, "errors": []}


async def preview_update(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """``salesforce.update``: the fields it would PATCH on the record."""
    record_id = update_id(params)
    ctx.would_write("update", {"object": params["object"], "id": record_id},
                    writable_fields(params["record"], drop=("Id",)))
    return {"id": record_id, "success": True, "errors": []}


async def preview_upsert(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """``salesforce.upsert``: the record it would PATCH by external id."""
    field, value = upsert_key(params)
    ctx.would_write("upsert", {"object": params["object"], "externalIdField": field,
                               "externalId": str(value)},
                    writable_fields(params["record"], drop=("Id", field)))
    return {"id": DRY_RUN_ID, "success": True, "errors": [], "created": None}


async def preview_delete(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """``salesforce.delete``: the record it would delete."""
    ctx.would_write("delete", {"object": params["object"], "id": str(params["id"])}, None)
    return {"id": params["id"], "success": True, "errors": []}


async def preview_collections(ctx: OperationContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    """``salesforce.collections``: one told write per record, bodies as the chunks would carry them."""
    operation, sobject = params["operation"], params.get("object")
    results: list[dict[str, Any]] = []
    for index, record in enumerate(params["records"]):
        body = _prepare(operation, sobject, record, index, params.get("external-id-field"))
        if operation == "delete":
            ctx.would_write("delete", {"object": sobject, "id": body}, None)
            results.append({"index": index, "id": body, "success": True, "errors": []})
            continue
        target = {"object": body["attributes"]["type"], "id": body.get("Id")}
        ctx.would_write(operation, target, body)
        results.append({"index": index, "id": body.get("Id") or DRY_RUN_ID, "success": True,
                        "errors": [], **({"created": None} if operation == "upsert" else {})})
    return results

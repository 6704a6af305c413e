"""The ``salesforce.*`` operations a flow can call, each with its parameter schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from connectors.salesforce.batched import CREATE_BATCH, UPDATE_BATCH, UPSERT_BATCH
from connectors.salesforce.bulk import start_bulk_query
from connectors.salesforce.client import client_of
from connectors.salesforce.composite import MAX_BATCH, collection_write
from connectors.salesforce.errors import SalesforceError
from connectors.salesforce.preview import (
    preview_collections,
    preview_create,
    preview_delete,
    preview_update,
    preview_upsert,
)
from connectors.salesforce.queries import QUERY_BATCH, query
from connectors.salesforce.soql import bind
from connectors.salesforce.targets import update_id, upsert_key
from runtime import OperationContext, OperationSpec, Param

__all__ = ["OPERATIONS"]

_OBJECT = Param("object", required=True, examples=("Opportunity",),
                summary="sObject API name (Account, Opportunity, Custom__c)")
_QUERY = Param("query", required=True,
               summary="SOQL; write :name where a value goes and pass it in binds, never concatenate",
               examples=("SELECT Id, Name FROM Account WHERE QB_Customer_Id__c = :qbId",))
_BINDS = Param("binds", type="object",
               summary="Values for :name placeholders, quoted per SOQL rules: strings escaped, "
                       "numbers, booleans, null, lists for IN, {date: ...} / {datetime: ...} for "
                       "date literals")
_RECORD = Param("record", type="object", required=True, summary="Field values to write")


async def _stream(records: Any) -> AsyncIterator[dict[str, Any]]:
    async for record in records:
        yield record


async def get(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """One record by Id or by external id."""
    client, fields = client_of(ctx), params.get("fields")
    if params.get("external-id-field"):
        return await client.get_by_external_id(params["object"], params["external-id-field"],
                                               str(params.get("external-id") or params.get("id")),
                                               fields)
    if not params.get("id"):
        raise SalesforceError("get needs id or external-id-field + external-id",
                              error_type="SALESFORCE:VALIDATION")
    return await client.get(params["object"], str(params["id"]), fields)


async def create(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """Insert one record; the payload becomes ``{"id", "success", "errors"}``."""
    result = await client_of(ctx).create(params["object"], params["record"])
    ctx.annotate(record_id=str(result.get("id")))
    return result


async def update(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """Update one record by Id (``id`` or ``record.Id``)."""
    record_id = update_id(params)
    await client_of(ctx).update(params["object"], record_id, params["record"])
    ctx.annotate(record_id=record_id)
    return {"id": record_id, "success": True, "errors": []}


async def upsert(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """Insert or update by external id; the payload is ``{"id", "created", "success"}``."""
    field, value = upsert_key(params)
    result = await client_of(ctx).upsert(params["object"], field, value, params["record"])
    ctx.annotate(record_id=str(result.get("id")), created=bool(result.get("created")))
    return result


async def delete(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """Delete one record; ``ignore-missing`` turns NOT_FOUND / ENTITY_IS_DELETED into success."""
    try:
        await client_of(ctx).delete(params["object"], str(params["id"]))
    except SalesforceError as error:
        if not (params.get("ignore-missing") and error.kind in ("NOT_FOUND", "ENTITY_IS_DELETED")):
            raise
    return {"id": params["id"], "success": True, "errors": []}


async def collections(ctx: OperationContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Write many records, 200 per call; one result per input record, in input order."""
    results = await collection_write(
        client_of(ctx), params["operation"], params["records"], sobject=params.get("object"),
        external_id_field=params.get("external-id-field"),
        all_or_none=params["all-or-none"], batch_size=params["batch-size"])
    failed = [r for r in results if not r["success"]]
    ctx.annotate(records=len(results), failed=len(failed))
    if failed and params.get("fail-on-error"):
        first = failed[0]
        error = (first["errors"] or [{}])[0]
        raise SalesforceError(f"{len(failed)} of {len(results)} records failed",
                              error_type="SALESFORCE:PARTIAL_FAILURE",
                              details={"failed": len(failed), "index": first["index"],
                                       "errorCode": error.get("statusCode")})
    return results


async def bulk_query(ctx: OperationContext, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Run a Bulk API 2.0 query job and stream its CSV rows as records."""
    job = await start_bulk_query(
        client_of(ctx), bind(params["query"], params.get("binds")),
        include_deleted=params["include-deleted"],
        poll_interval=params["poll-interval"], max_wait=params["max-wait"],
        page_size=params["page-size"])
    ctx.annotate(job_id=job.job_id)
    return _stream(job)


OPERATIONS: tuple[OperationSpec, ...] = (
    OperationSpec("query", query, read_only=True, writes=False, summary="SOQL query, streamed record by record",
                  batch=QUERY_BATCH,
                  output="async stream of records (nested parents and child subqueries as JSON)",
                  params=(_QUERY, _BINDS,
                          Param("include-deleted", type="boolean", default=False,
                                summary="Use queryAll (deleted and archived rows too)"),
                          Param("batch-size", type="integer",
                                summary="Page size hint (200-2000) via Sforce-Query-Options"))),
    OperationSpec("get", get, read_only=True, writes=False, summary="Read one record by Id or external id",
                  output="the record",
                  params=(_OBJECT, Param("id", summary="Record Id"),
                          Param("external-id-field", summary="Read by this external id field"),
                          Param("external-id", summary="The external id value"),
                          Param("fields", type="array", schema={"type": "array", "items": {"type": "string"}},
                                summary="Fields to return (default: all)"))),
    OperationSpec("create", create, summary="Insert one record", output="{id, success, errors}",
                  writes=True, preview=preview_create, batch=CREATE_BATCH,
                  params=(_OBJECT, _RECORD)),
    OperationSpec("update", update, summary="Update one record", output="{id, success, errors}",
                  writes=True, preview=preview_update, batch=UPDATE_BATCH,
                  params=(_OBJECT, _RECORD, Param("id", summary="Record Id (default: record.Id)"))),
    OperationSpec("upsert", upsert, summary="Insert or update one record by external id",
                  output="{id, created, success, errors}", writes=True, preview=preview_upsert,
                  batch=UPSERT_BATCH,
                  params=(_OBJECT, _RECORD,
                          Param("external-id-field", required=True, examples=("QB_Customer_Id__c",),
                                summary="External id field to match on"),
                          Param("external-id",
                                summary="Value to match (default: the record's external id field)"))),
    OperationSpec("delete", delete, summary="Delete one record", output="{id, success, errors}",
                  writes=True, preview=preview_delete,
                  params=(_OBJECT, Param("id", required=True, summary="Record Id"),
                          Param("ignore-missing", type="boolean", default=False,
                                summary="Succeed when the record is already gone"))),
    OperationSpec("collections", collections,
                  summary="Create, update, upsert or delete many records, 200 per API call",
                  output="[{index, id, success, created?, errors}] in input order",
                  writes=True, preview=preview_collections,
                  params=(Param("operation", required=True, enum=("create", "update", "upsert", "delete"),
                                summary="What to do with the records"),
                          Param("records", type="array", required=True,
                                schema={"type": "array", "items": {"type": ["object", "string"]}},
                                summary="Records (or Ids for delete); any length, sent in chunks"),
                          Param("object", summary="sObject of records without attributes.type; "
                                                  "required for upsert"),
                          Param("external-id-field", summary="Upsert key"),
                          Param("all-or-none", type="boolean", default=False,
                                summary="Roll back a whole chunk (200 records) if one record fails"),
                          Param("batch-size", type="integer", default=MAX_BATCH,
                                summary="Records per call, at most 200"),
                          Param("fail-on-error", type="boolean", default=False,
                                summary="Raise SALESFORCE:PARTIAL_FAILURE when any record failed"))),
    OperationSpec("bulk-query", bulk_query, read_only=True, writes=False,
                  summary="Bulk API 2.0 query job, rows streamed from CSV",
                  output="async stream of flat records (values as strings, empty -> null)",
                  params=(_QUERY, _BINDS,
                          Param("include-deleted", type="boolean", default=False,
                                summary="queryAll operation"),
                          Param("poll-interval", type="duration", default="1s",
                                summary="First pause between job status polls (grows 1.5x)"),
                          Param("max-wait", type="duration", default="1h",
                                summary="Abort the job when not complete by then"),
                          Param("page-size", type="integer", default=50000,
                                summary="maxRecords per result page"))),
)

"""The operations flows call: ``quickbooks.create``, ``update``, ``get``, ``delete``, ``void``,
``query``, ``batch``, ``cdc``, ``find-or-create`` and ``match-or-create``.

Handlers receive rendered parameters and the connection's :class:`QuickBooksClient`; they return
the new payload (the entity as QuickBooks answered it, Decimals for money). Writes go through
:mod:`connectors.quickbooks.writes`, so a replayed event changes nothing, and creates through
:mod:`connectors.quickbooks.creates`, so a lost answer makes no second record. ``create``,
``update`` (:mod:`~connectors.quickbooks.batched`), ``query`` (:mod:`~connectors.quickbooks.queries`)
and ``match-or-create`` (:mod:`~connectors.quickbooks.matching_batch`) have batch forms: the calls
of many executions sent together, each with the outcome its single call would have.
"""

from __future__ import annotations

from typing import Any

from connectors.quickbooks.batch import batch_operation
from connectors.quickbooks.batched import CREATE_BATCH, UPDATE_BATCH
from connectors.quickbooks.creates import create_record
from connectors.quickbooks.errors import quickbooks_error
from connectors.quickbooks.lookup import find_or_create, match_or_create
from connectors.quickbooks.matching_batch import MATCH_BATCH
from connectors.quickbooks.preview import (
    batch_writes,
    preview_batch,
    preview_create,
    preview_delete,
    preview_update,
    preview_void,
)
from connectors.quickbooks.queries import QUERY_BATCH, query
from connectors.quickbooks.reads import NAME_LISTS
from connectors.quickbooks.steps import step_client, step_entity, step_record
from connectors.quickbooks.writes import apply_update, implicit_key, once, writable
from runtime import OperationContext, OperationSpec, Param

__all__ = ["OPERATIONS"]

#: Voided through ``operation=update&include=void`` instead of ``operation=void``.
VOID_BY_UPDATE = frozenset({"Payment", "SalesReceipt", "BillPayment"})

ENTITY = Param("entity", required=True, summary="Entity name as in the API: Customer, Invoice...",
               examples=("Invoice", "Customer"))
RECORD = Param("record", "object", summary="The entity body (default: the payload)")
KEY = Param("idempotency-key", summary="Stable key of this logical write; becomes the requestid and "
            "the ledger key", examples=("#[ 'opp-' & vars.trigger.Id ]",))



async def create(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """Create one entity, once per idempotency key."""
    client, entity = step_client(ctx), step_entity(params)
    body = writable(step_record(ctx, params), entity)
    body.pop("Id", None)
    body.pop("SyncToken", None)
    key = params.get("idempotency-key")
    if not key:
        raise quickbooks_error("VALIDATION", "quickbooks.create needs an idempotency-key")
    result = await once(ctx, client.realm_id, f"create:{entity}:{key}",
                        lambda: create_record(ctx, client, entity, body, str(key)))
    ctx.annotate(entity=entity, record_id=str(result.get("Id", "")))
    return result


async def update(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """Sparse (default) or full update; a stale SyncToken is re-read and our fields re-applied."""
    client, entity = step_client(ctx), step_entity(params)
    record = step_record(ctx, params)
    key = params.get("idempotency-key")
    rid_key = str(key) if key else implicit_key(ctx, "update", entity, record)
    return await once(ctx, client.realm_id, f"update:{entity}:{key}" if key else None,
                      lambda: apply_update(client, entity, record, sparse=params["sparse"],
                                           key=rid_key, attempts=params["stale-retries"]))


async def get(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """Read one entity by Id."""
    return await step_client(ctx).read(step_entity(params), str(params["id"]),
                                       include=params.get("include") or None)


async def delete(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """Delete a transaction, or make a name-list entity inactive."""
    client, entity = step_client(ctx), step_entity(params)
    record = {"Id": str(params["id"]), "SyncToken": params.get("sync-token")}
    key = params.get("idempotency-key")
    rid_key = str(key) if key else implicit_key(ctx, "delete", entity, record)
    if entity in NAME_LISTS:
        record["Active"] = False
        call = lambda: apply_update(client, entity, record, key=rid_key)  # noqa: E731
    else:
        call = lambda: apply_update(client, entity, record, key=rid_key,  # noqa: E731
                                    operation="delete")
    return await once(ctx, client.realm_id, f"delete:{entity}:{key}" if key else None, call)


async def void(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """Void a transaction (kept with zero amounts)."""
    client, entity = step_client(ctx), step_entity(params)
    record = {"Id": str(params["id"]), "SyncToken": params.get("sync-token")}
    key = params.get("idempotency-key")
    rid_key = str(key) if key else implicit_key(ctx, "void", entity, record)
    by_update = entity in VOID_BY_UPDATE
    return await once(ctx, client.realm_id, f"void:{entity}:{key}" if key else None,
                      lambda: apply_update(client, entity, record, key=rid_key,
                                           operation="update" if by_update else "void",
                                           include="void" if by_update else None))


async def cdc(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """Changed and deleted objects per entity since a moment (at most 30 days back)."""
    entities = params["entities"]
    if isinstance(entities, str):
        entities = [e.strip() for e in entities.split(",") if e.strip()]
    return await step_client(ctx).cdc(list(entities), str(params["changed-since"]))


OPERATIONS: tuple[OperationSpec, ...] = (
    OperationSpec("create", create, (ENTITY, RECORD, Param("idempotency-key", required=True,
                                                           summary=KEY.summary,
                                                           examples=KEY.examples)),
                  summary="Create an entity once per idempotency key",
                  output="The created entity", writes=True, preview=preview_create,
                  batch=CREATE_BATCH),
    OperationSpec("update", update, (ENTITY, RECORD, KEY,
                                     Param("sparse", "boolean", default=True,
                                           summary="Change only the given fields"),
                                     Param("stale-retries", "integer", default=3,
                                           summary="Re-reads after a stale SyncToken (5010)")),
                  summary="Update an entity by Id; SyncToken handled", output="The updated entity",
                  writes=True, preview=preview_update, batch=UPDATE_BATCH),
    OperationSpec("get", get, (ENTITY, Param("id", required=True, summary="Entity Id"),
                               Param("include", summary="Extra parts QuickBooks adds on request",
                                     examples=("invoiceLink",))),
                  summary="Read an entity by Id", output="The entity", read_only=True, writes=False),
    OperationSpec("delete", delete, (ENTITY, Param("id", required=True),
                                     Param("sync-token", summary="Read when not given"), KEY),
                  summary="Delete a transaction, or deactivate a name-list entity",
                  output="The delete answer or the deactivated entity", writes=True,
                  preview=preview_delete),
    OperationSpec("void", void, (Param("entity", default="Invoice"), Param("id", required=True),
                                 Param("sync-token", summary="Read when not given"), KEY),
                  summary="Void a transaction", output="The voided entity", writes=True,
                  preview=preview_void),
    OperationSpec("query", query, (
        Param("query", required=True, summary="A select; :name marks a bind",
              examples=("select * from Customer where DisplayName = :name",)),
        Param("binds", "object", summary="Values for :name marks, quoted safely"),
        Param("limit", "integer", summary="Stop after this many rows"),
        Param("page-size", "integer", default=1000, summary="MAXRESULTS per page (at most 1000)"),
        Param("stream", "boolean", default=False,
              summary="Return the rows as a stream (for foreach) instead of a list")),
        summary="Run a query, following pages", output="A list of entities, or a count",
        read_only=True, writes=False, batch=QUERY_BATCH),
    OperationSpec("batch", batch_operation, (
        Param("items", "array", summary="Items {operation, entity, record} or {query} "
              "(default: the payload)"),
        Param("idempotency-key", summary="Key of the whole batch (required when it creates)"),
        Param("raise-on-fault", "boolean", default=False,
              summary="Fail the step when any item failed")),
        summary="Run many writes in batches of at most 30",
        output="One result per input item, in input order", writes=batch_writes,
        preview=preview_batch),
    OperationSpec("cdc", cdc, (
        Param("entities", "any", required=True, summary="Entity names (list or comma-separated)"),
        Param("changed-since", required=True, summary="ISO timestamp with offset, <= 30 days ago")),
        summary="Change data capture", output="{Entity: [records or deletions]}", read_only=True, writes=False),
    OperationSpec("match-or-create", match_or_create, (
        Param("entity", default="Customer", enum=("Customer", "Item")), RECORD,
        Param("link", summary="The QuickBooks id the source record stores (its link), tried first",
              examples=("#[ vars.account.QB_Customer_Id__c ]",)),
        Param("external-key", summary="Your own key for this record (e.g. a Salesforce Id); its link "
              "and the record's owner are remembered in the object store"),
        Param("match-rules", "any", summary="Rules tried in order after the link: each a field path "
              "or paths joined by '+' that must all be equal (list or comma-separated)",
              examples=("PrimaryEmailAddr.Address, DisplayName+BillAddr.PostalCode, DisplayName",)),
        Param("linked-elsewhere", "array", summary="QuickBooks ids linked to other records: never "
              "matched, never written"),
        Param("exclusive", "boolean", default=True,
              summary="One source record per QuickBooks record: one linked to another external key "
                      "is never matched (customers); false lets records share one (items)"),
        Param("distinct-by", "any", summary="Fields that tell two records apart: a candidate whose "
              "value differs from the record's is another record (e.g. Sku)"),
        Param("on-ambiguous", default="create", enum=("create", "hold"),
              summary="No single free candidate: create a distinct record under the template's "
                      "name, or hold the record for review (nothing created)"),
        Param("name-template", default="{Name} ({BillingCity})",
              summary="Name of a distinct record when the record's own is taken: {Field} from "
                      "template-values, then a numbered suffix"),
        Param("template-values", "object", summary="Values of the template's {Field}s (the source "
              "record)"),
        Param("rename", "boolean", default=False,
              summary="The caller gives a linked record the record's name when it differs: the "
                      "output's name is then that name if free, else the template's"),
        KEY),
        summary="Match a Customer or Item by link and rules, never one linked elsewhere, or create "
                "it; returns the decision",
        output="{action: linked|created|held, rule, name, candidates, reason, note, record}",
        writes=True, preview=match_or_create, batch=MATCH_BATCH),
    OperationSpec("find-or-create", find_or_create, (
        Param("entity", default="Customer", enum=("Customer", "Item")), RECORD,
        Param("match-by", summary="Field to match on: DisplayName (Customer), Name or Sku (Item)"),
        Param("external-key", summary="Your own key for this record (e.g. a Salesforce Id); "
              "remembered in the object store"),
        KEY),
        summary="Find a Customer or Item by name, SKU or external key, or create it (race-safe)",
        output="The existing or created entity", writes=True, preview=find_or_create),
)

"""sObject Collections: up to 200 records per call, results mapped back to the input records.

Collections answer HTTP 200 even when records fail, with one result per input record in the same
order; each failure carries ``statusCode`` (not ``errorCode``). Larger inputs are cut into chunks of
200, so ``allOrNone`` holds per chunk, not across chunks. Records refused with
``UNABLE_TO_LOCK_ROW`` were not written and are sent again (with the whole chunk when ``allOrNone``
rolled the others back), up to the connection's ``lock-retries``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote as url_quote

import anyio

from connectors.salesforce.errors import SalesforceError
from runtime import backoff_delay

if TYPE_CHECKING:
    from connectors.salesforce.client import SalesforceClient

__all__ = ["MAX_BATCH", "collection_write"]

MAX_BATCH = 200
OPERATIONS = ("create", "update", "upsert", "delete")
_LOCK = "UNABLE_TO_LOCK_ROW"
_ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


def _codes(result: Mapping[str, Any]) -> set[str]:
    return {str(e.get("statusCode") or e.get("errorCode")) for e in result.get("errors") or ()
            if isinstance(e, Mapping)}


def _prepare(operation: str, sobject: str | None, record: Any, index: int,
             external_id_field: str | None) -> Any:
    if operation == "delete":
        record_id = record.get("Id") if isinstance(record, Mapping) else record
        if not record_id:
            raise SalesforceError(f"record {index} has no Id to delete",
                                  error_type="SALESFORCE:VALIDATION", details={"index": index})
        return str(record_id)
    if not isinstance(record, Mapping):
        raise SalesforceError(f"record {index} is not an object", error_type="SALESFORCE:VALIDATION",
                              details={"index": index})
    body = dict(record)
    attributes = dict(body.get("attributes") or {})
    attributes.setdefault("type", sobject)
    if not attributes.get("type"):
        raise SalesforceError(f"record {index} names no sObject type (set object)",
                              error_type="SALESFORCE:VALIDATION", details={"index": index})
    body["attributes"] = {"type": attributes["type"]}
    if operation == "update" and not body.get("Id"):
        raise SalesforceError(f"record {index} has no Id to update",
                              error_type="SALESFORCE:VALIDATION", details={"index": index})
    if operation == "upsert" and external_id_field and body.get(external_id_field) in (None, ""):
        raise SalesforceError(f"record {index} has no {external_id_field}",
                              error_type="SALESFORCE:VALIDATION", details={"index": index})
    if operation == "create":
        body.pop("Id", None)
    return body


async def _send(client: SalesforceClient, operation: str, sobject: str | None,
                external_id_field: str | None, chunk: list[Any], all_or_none: bool) -> list[Any]:
    if operation == "delete":
        params = {"ids": ",".join(chunk), "allOrNone": str(all_or_none).lower()}
        response = await client.request("DELETE", client.data("composite/sobjects"), params=params,
                                        context="collections delete")
    else:
        path = client.data("composite/sobjects")
        if operation == "upsert":
            path += f"/{url_quote(str(sobject), safe='')}/{url_quote(str(external_id_field), safe='')}"
        method = "POST" if operation == "create" else "PATCH"
        response = await client.request(method, path, json={"allOrNone": all_or_none, "records": chunk},
                                        idempotent=operation != "create",
                                        context=f"collections {operation}")
    results = response.json()
    if not isinstance(results, list) or len(results) != len(chunk):
        raise SalesforceError("collections answer does not match the records sent",
                              error_type="SALESFORCE:BAD_RESPONSE", retryable=False)
    return results


async def collection_write(client: SalesforceClient, operation: str, records: Sequence[Any], *,
                           sobject: str | None = None, external_id_field: str | None = None,
                           all_or_none: bool = False, batch_size: int = MAX_BATCH) -> list[dict[str, Any]]:
    """Write ``records`` in chunks; one result per input record, in input order.

    Each result is ``{"index", "id", "success", "errors"[, "created"]}``; ``index`` is the position
    in ``records``.
    """
    if operation not in OPERATIONS:
        raise SalesforceError(f"unknown collections operation {operation!r}",
                              error_type="SALESFORCE:VALIDATION")
    if operation == "upsert" and not (sobject and external_id_field):
        raise SalesforceError("upsert needs object and external-id-field",
                              error_type="SALESFORCE:VALIDATION")
    size = max(1, min(MAX_BATCH, batch_size))
    prepared = [_prepare(operation, sobject, r, i, external_id_field) for i, r in enumerate(records)]
    results: list[dict[str, Any] | None] = [None] * len(prepared)
    for start in range(0, len(prepared), size):
        pending = list(range(start, min(start + size, len(prepared))))
        attempt = 0
        while pending:
            attempt += 1
            answers = await _send(client, operation, sobject, external_id_field,
                                  [prepared[i] for i in pending], all_or_none)
            retry: list[int] = []
            locked = [i for i, a in zip(pending, answers, strict=True) if _LOCK in _codes(a)]
            only_locks = all(a.get("success") or _codes(a) & {_LOCK, _ROLLED_BACK} for a in answers)
            for index, answer in zip(pending, answers, strict=True):
                may_retry = attempt <= client.settings.lock_retries and locked and (
                    index in locked or (all_or_none and only_locks and not answer.get("success")))
                if may_retry and not answer.get("success"):
                    retry.append(index)
                    continue
                result = {"index": index, "id": answer.get("id"),
                          "success": bool(answer.get("success")), "errors": answer.get("errors") or []}
                if result["success"] and result["id"] and (
                        operation == "update" or operation == "upsert" and answer.get("created") is False):
                    # What polled triggers must know as this connection's own write (an upsert
                    # that created a record changed nothing anybody handled).
                    sent = prepared[index]
                    client.own_writes.record(str(sent["attributes"]["type"]), str(result["id"]), sent)
                if "created" in answer:
                    result["created"] = answer["created"]
                results[index] = result
            if retry:
                await anyio.sleep(backoff_delay(attempt, initial=client.settings.retry_delay, maximum=5.0))
            pending = retry
    return [r for r in results if r is not None]

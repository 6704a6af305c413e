"""Batch forms of ``salesforce.create``, ``update`` and ``upsert``: the writes of many executions
in one sObject Collections call (200 records), which Salesforce counts as one API request.

Each call keeps the outcome its single form would have had: the same payload
(``{"id", "success", "errors"[, "created"]}``), or its own ``SALESFORCE:*`` error of the same type
(collections report per-record failures as ``statusCode`` on an HTTP 200; :mod:`.errors` reads
both forms through one table). Records refused with ``UNABLE_TO_LOCK_ROW`` are sent again, as a
single write is, and updates are remembered as this connection's own writes, so polled triggers
with ``ignore-own-writes`` tell their echoes as they do after a single update.

Calls go ``allOrNone: false``: one bad record fails only its own call. Two calls that name the
same record (same Id, or same external id value) never share one request: Salesforce refuses an
upsert request that repeats an external id, and two writes to one record must land one after the
other, as they would alone. The second goes in a later request of the same batch. A request that fails as a whole (unavailable, quota, session)
fails the calls it carried, each with its own error; calls already written keep their results.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.salesforce.client import SalesforceClient, client_of, writable_fields
from connectors.salesforce.composite import MAX_BATCH, collection_write
from connectors.salesforce.errors import SalesforceError, error_from_result
from connectors.salesforce.targets import update_id, upsert_key
from runtime import BatchCall, BatchForm, SpliceError

__all__ = ["CREATE_BATCH", "UPDATE_BATCH", "UPSERT_BATCH", "create_many", "update_many", "upsert_many"]

#: Objects one Collections call may mix.
MAX_TYPES = 10
_IDS = re.compile(r"\b([a-zA-Z0-9]{18}|[a-zA-Z0-9]{15})\b")


@dataclass(frozen=True, slots=True)
class _Write:
    """One call's record as sent, and what it may share a request with."""

    position: int
    body: dict[str, Any]
    #: The record it names (15-character Id, lower-cased external id); ``None``: a new record.
    identity: str | None
    #: Prefix of its error messages, as the single form words them (``update Opportunity``).
    context: str


def _rounds(writes: Sequence[_Write]) -> list[list[_Write]]:
    """``writes`` in requests where no record appears twice; a record's n-th write goes in round n."""
    rounds: list[list[_Write]] = []
    seen: dict[str, int] = {}
    for write in writes:
        number = 0
        if write.identity is not None:
            number = seen.get(write.identity, 0)
            seen[write.identity] = number + 1
        while len(rounds) <= number:
            rounds.append([])
        rounds[number].append(write)
    return rounds


def _requests(writes: Sequence[_Write]) -> list[list[_Write]]:
    """One round's writes as requests: 200 records at most, records of one object side by side,
    at most 10 objects (Salesforce processes a mixed call in runs of one type, 10 runs at most)."""
    ordered = sorted(writes, key=lambda w: str(w.body["attributes"]["type"]))
    requests: list[list[_Write]] = [[]]
    types: set[str] = set()
    for write in ordered:
        sobject = str(write.body["attributes"]["type"])
        if len(requests[-1]) >= MAX_BATCH or (sobject not in types and len(types) >= MAX_TYPES):
            requests.append([])
            types = set()
        requests[-1].append(write)
        types.add(sobject)
    return requests


def _own_copy(error: SalesforceError) -> SalesforceError:
    """A separate instance of ``error`` for each call it fails (each execution handles its own)."""
    return SalesforceError(error.message, error_type=error.error_type, retryable=error.retryable,
                           retry_after=error.retry_after, status=error.status, details=error.details)


async def _write(calls: Sequence[BatchCall], operation: str,
                 prepare: Callable[[int, BatchCall], _Write],
                 finish: Callable[[BatchCall, _Write, Mapping[str, Any]], Any],
                 failure: Callable[[Mapping[str, Any], _Write], SalesforceError], *,
                 sobject: str | None = None, external_id_field: str | None = None) -> list[Any]:
    """Send every call's record by ``operation``; one result (payload or error) per call."""
    results: list[Any] = [None] * len(calls)
    writes: list[_Write] = []
    for position, call in enumerate(calls):
        try:
            writes.append(prepare(position, call))
        except SpliceError as error:
            results[position] = error
    if not writes:
        return results
    client: SalesforceClient = client_of(calls[0].ctx)
    for round_ in _rounds(writes):
        for chunk in _requests(round_):
            try:
                answers = await collection_write(client, operation, [w.body for w in chunk],
                                                 sobject=sobject, external_id_field=external_id_field)
            except SalesforceError as error:
                for write in chunk:
                    results[write.position] = _own_copy(error)
                continue
            for write, answer in zip(chunk, answers, strict=True):
                call = calls[write.position]
                results[write.position] = (finish(call, write, answer) if answer["success"]
                                           else failure(answer, write))
    return results


def _record_failure(answer: Mapping[str, Any], write: _Write) -> SalesforceError:
    return error_from_result(answer, context=write.context)


# -- update -------------------------------------------------------------------------------------

def _prepare_update(position: int, call: BatchCall) -> _Write:
    record_id = update_id(call.params)
    sobject = str(call.params["object"])
    body = {"attributes": {"type": sobject}, **writable_fields(call.params["record"], drop=("Id",)),
            "Id": record_id}
    return _Write(position, body, record_id[:15], f"update {sobject}")


def _finish_update(call: BatchCall, write: _Write, answer: Mapping[str, Any]) -> dict[str, Any]:
    record_id = str(write.body["Id"])
    call.ctx.annotate(record_id=record_id)
    return {"id": record_id, "success": True, "errors": []}


async def update_many(calls: Sequence[BatchCall]) -> list[Any]:
    """``salesforce.update`` of many executions: ``PATCH composite/sobjects``, 200 records a call
    (objects may be mixed: every record carries its type)."""
    return await _write(calls, "update", _prepare_update, _finish_update, _record_failure)


# -- create -------------------------------------------------------------------------------------

def _prepare_create(position: int, call: BatchCall) -> _Write:
    sobject = str(call.params["object"])
    body = {"attributes": {"type": sobject}, **writable_fields(call.params["record"], drop=("Id",))}
    return _Write(position, body, None, f"create {sobject}")


def _finish_create(call: BatchCall, write: _Write, answer: Mapping[str, Any]) -> dict[str, Any]:
    call.ctx.annotate(record_id=str(answer.get("id")))
    return {"id": answer.get("id"), "success": True, "errors": []}


async def create_many(calls: Sequence[BatchCall]) -> list[Any]:
    """``salesforce.create`` of many executions: ``POST composite/sobjects``, 200 records a call.

    Not sent again after a lost answer, as a single create is not (see
    :meth:`~connectors.salesforce.client.SalesforceClient.create`).
    """
    return await _write(calls, "create", _prepare_create, _finish_create, _record_failure)


# -- upsert -------------------------------------------------------------------------------------

def _prepare_upsert(position: int, call: BatchCall) -> _Write:
    field, value = upsert_key(call.params)
    sobject = str(call.params["object"])
    body = {"attributes": {"type": sobject},
            **writable_fields(call.params["record"], drop=("Id", field)), field: value}
    return _Write(position, body, str(value).lower(), f"upsert {sobject}")


def _finish_upsert(call: BatchCall, write: _Write, answer: Mapping[str, Any]) -> dict[str, Any]:
    created = bool(answer.get("created"))
    call.ctx.annotate(record_id=str(answer.get("id")), created=created)
    return {"id": answer.get("id"), "success": True, "errors": [], "created": created}


def _upsert_failure(answer: Mapping[str, Any], write: _Write) -> SalesforceError:
    """As the single upsert fails: several records matching the external id is
    ``SALESFORCE:MULTIPLE_MATCHES`` with their ids (collections say ``DUPLICATE_EXTERNAL_ID``)."""
    error = error_from_result(answer, context=write.context)
    if error.details.get("errorCode") == "DUPLICATE_EXTERNAL_ID":
        matches = _IDS.findall(error.message.split(":", 1)[-1])
        return SalesforceError(f"{write.context}: {len(matches) or 'several'} records match the external id",
                               error_type="SALESFORCE:MULTIPLE_MATCHES",
                               details={**error.details, "matches": matches})
    return error


async def upsert_many(calls: Sequence[BatchCall]) -> list[Any]:
    """``salesforce.upsert`` of many executions: ``PATCH composite/sobjects/{object}/{field}``,
    200 records a call (the batch key keeps one object and external id field per batch)."""
    sobject = str(calls[0].params["object"])
    field = str(calls[0].params["external-id-field"])
    return await _write(calls, "upsert", _prepare_upsert, _finish_upsert, _upsert_failure,
                        sobject=sobject, external_id_field=field)


def _object_key(params: Mapping[str, Any]) -> Hashable:
    return str(params.get("object"))


def _upsert_key(params: Mapping[str, Any]) -> Hashable:
    return str(params.get("object")), str(params.get("external-id-field"))


#: One request for up to 200 updates of any objects on the connection.
UPDATE_BATCH = BatchForm(update_many, max_size=MAX_BATCH)
#: One request for up to 200 inserts of one object.
CREATE_BATCH = BatchForm(create_many, max_size=MAX_BATCH, key=_object_key)
#: One request for up to 200 upserts of one object by one external id field.
UPSERT_BATCH = BatchForm(upsert_many, max_size=MAX_BATCH, key=_upsert_key)

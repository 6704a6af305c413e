"""REST resources under ``/services/data/vNN.N/``: versions, limits, describe, sObject rows,
upsert by external id, queries with ``nextRecordsUrl`` paging, and sObject Collections."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.query import Result, execute
from connectors.salesforce.emulator.replication import changed_ids
from connectors.salesforce.emulator.state import Emulator

__all__ = ["ROUTES", "Handler", "call_origin"]

Handler = Callable[..., Awaitable[Response]]
_ID = re.compile(r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$")
MAX_COLLECTION = 200


def call_origin(request: Request) -> str | None:
    """The ``client=`` of ``Sforce-Call-Options`` (it shows up in CDC ``changeOrigin``)."""
    match = re.search(r"client=([^,;\s]+)", request.headers.get("sforce-call-options", ""))
    return match.group(1) if match else None


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        raise ApiError(400, "JSON_PARSER_ERROR", "Unexpected character: was expecting a JSON value") from None


def _row(emu: Emulator, obj: str, record: dict[str, Any], fields: str | None = None) -> dict[str, Any]:
    definition = emu.org.schema(obj)
    out: dict[str, Any] = {"attributes": {
        "type": definition.name,
        "url": f"/services/data/v{emu.org.api_version}/sobjects/{definition.name}/{record['Id']}"}}
    if fields:
        for name in fields.split(","):
            fdef = definition.field(name.strip())
            if fdef is None:
                raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj}")
            out[fdef.name] = record.get(fdef.name)
    else:
        out.update(record)
    return out


def _check_lock(emu: Emulator, record_id: str | None = None) -> None:
    if emu.faults.take_lock():
        raise ApiError(400, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 "
                                                  f"records: {record_id or ''}".rstrip())


async def versions(request: Request, emu: Emulator) -> Response:
    labels = {62: "Winter '25", 63: "Spring '25", 64: "Summer '25", 65: "Winter '26", 66: "Spring '26"}
    return JSONResponse([{"label": label, "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
                         for v, label in labels.items()])


async def resources(request: Request, emu: Emulator, v: str) -> Response:
    base = f"/services/data/v{v}"
    return JSONResponse({name: f"{base}/{name}" for name in
                         ("sobjects", "query", "queryAll", "limits", "composite", "jobs")})


async def limits(request: Request, emu: Emulator, v: str) -> Response:
    f = emu.faults
    return JSONResponse({"DailyApiRequests": {"Max": f.daily_limit, "Remaining": max(0, f.daily_limit - f.api_used)},
                         "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000 - len(emu.jobs)},
                         "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562}})


async def global_describe(request: Request, emu: Emulator, v: str) -> Response:
    return JSONResponse({"encoding": "UTF-8", "maxBatchSize": 200,
                         "sobjects": [d.summary() for d in emu.org.schemas.values()]})


async def sobject_info(request: Request, emu: Emulator, v: str, obj: str) -> Response:
    return JSONResponse({"objectDescribe": emu.org.schema(obj).summary(), "recentItems": []})


async def describe(request: Request, emu: Emulator, v: str, obj: str) -> Response:
    return JSONResponse(emu.org.schema(obj).describe(emu.org.api_version))


async def create(request: Request, emu: Emulator, v: str, obj: str) -> Response:
    body = await _json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a non-object")
    _check_lock(emu)
    record = emu.org.create(obj, body, origin=call_origin(request))
    return JSONResponse({"id": record["Id"], "success": True, "errors": []}, status_code=201)


async def row(request: Request, emu: Emulator, v: str, obj: str, rid: str) -> Response:
    if request.method == "GET":
        return JSONResponse(_row(emu, obj, emu.org.get(obj, rid), request.query_params.get("fields")))
    _check_lock(emu, rid)
    if request.method == "DELETE":
        emu.org.delete(obj, rid, origin=call_origin(request))
        return Response(status_code=204)
    body = await _json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a non-object")
    if "Id" in body and body["Id"] != rid:
        raise ApiError(400, "INVALID_FIELD", "The Id field should not be specified in the sobject data.")
    emu.org.update(obj, rid, {k: val for k, val in body.items() if k != "Id"}, origin=call_origin(request))
    return Response(status_code=204)


async def sobject_key(request: Request, emu: Emulator, v: str, obj: str, key: str) -> Response:
    """``sobjects/X/{id}``, ``sobjects/X/describe`` or ``sobjects/X/updated|deleted`` (one path
    shape, told apart like Salesforce)."""
    if key == "describe":
        return await describe(request, emu, v, obj)
    if key in ("updated", "deleted") and request.method == "GET":
        return await changed_ids(request, emu, v, obj, key)
    if not _ID.match(key):
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    return await row(request, emu, v, obj, key)


async def by_external_id(request: Request, emu: Emulator, v: str, obj: str, field: str,
                         value: str) -> Response:
    value = unquote(value)
    if field == "Id" and request.method == "POST":
        return await create(request, emu, v, obj)
    matches = emu.org.by_external_id(obj, field, value)
    if request.method == "GET":
        if not matches:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if len(matches) > 1:
            return JSONResponse([_row(emu, obj, m)["attributes"]["url"] for m in matches], status_code=300)
        return JSONResponse(_row(emu, obj, matches[0], request.query_params.get("fields")))
    if len(matches) > 1:
        return JSONResponse([_row(emu, obj, m)["attributes"]["url"] for m in matches], status_code=300)
    if request.method == "DELETE":
        if not matches:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        emu.org.delete(obj, matches[0]["Id"], origin=call_origin(request))
        return Response(status_code=204)
    body = await _json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a non-object")
    fdef = emu.org.schema(obj).field(field)
    canonical = (fdef.name if fdef else field).lower()
    if any(key.lower() == canonical for key in body):
        # The value is in the URL; Salesforce refuses it in the body as well, even when equal.
        raise ApiError(400, "INVALID_FIELD", f"The external ID field {fdef.name if fdef else field} "
                                             "should not be specified in the sobject data.")
    result = _upsert_one(emu, request, obj, field, value, body, matches)
    return JSONResponse(result, status_code=201 if result["created"] else 200)


def _upsert_one(emu: Emulator, request: Request, obj: str, field: str, value: Any, body: dict[str, Any],
                matches: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    fdef = emu.org.schema(obj).field(field)
    canonical = fdef.name if fdef else field
    if "Id" in body:
        raise ApiError(400, "INVALID_FIELD", "The Id field should not be specified in the sobject data.")
    matches = emu.org.by_external_id(obj, field, value) if matches is None else matches
    if len(matches) > 1:
        # Only collections get here (the single upsert answers 300 first): a per-record error.
        raise ApiError(400, "DUPLICATE_EXTERNAL_ID", "more than one record found for external id field: "
                                                     f"[{', '.join(m['Id'] for m in matches)}]", [field])
    origin = call_origin(request)
    _check_lock(emu, matches[0]["Id"] if matches else None)
    if matches:
        emu.org.update(obj, matches[0]["Id"], {k: val for k, val in body.items() if k.lower() != canonical.lower()},
                       origin=origin)
        return {"id": matches[0]["Id"], "success": True, "errors": [], "created": False}
    record = emu.org.create(obj, {**body, canonical: value}, origin=origin)
    return {"id": record["Id"], "success": True, "errors": [], "created": True}


async def query(request: Request, emu: Emulator, v: str, resource: str) -> Response:
    text = request.query_params.get("q")
    if not text:
        raise ApiError(400, "MALFORMED_QUERY", "The query string parameter 'q' is required")
    result = execute(emu.org, text, include_deleted=resource == "queryAll")
    size = emu.options.page_size
    match = re.search(r"batchSize=(\d+)", request.headers.get("sforce-query-options", ""))
    if match:
        size = min(size, max(200, min(2000, int(match.group(1)))))
    return _page(emu, v, resource, result, 0, size, None)


def _page(emu: Emulator, v: str, resource: str, result: Result, offset: int, size: int,
          cursor: str | None) -> Response:
    body: dict[str, Any] = {"totalSize": result.total, "done": offset + size >= len(result),
                            "records": result.page(offset, size)}
    if not body["done"]:
        cursor = cursor or emu.new_cursor(result)
        body["nextRecordsUrl"] = f"/services/data/v{v}/{resource}/{cursor}-{offset + size}"
    elif cursor:
        emu.cursors.pop(cursor, None)
    return JSONResponse(body)


async def query_more(request: Request, emu: Emulator, v: str, resource: str, locator: str) -> Response:
    cursor, _, offset = locator.rpartition("-")
    result = emu.cursors.get(cursor)
    if result is None or not offset.isdigit():
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return _page(emu, v, resource, result, int(offset), emu.options.page_size, cursor)


async def collections(request: Request, emu: Emulator, v: str, obj: str | None = None,
                      field: str | None = None) -> Response:
    if request.method == "GET":
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        fields = request.query_params.get("fields")
        out = [(_row(emu, str(obj), r, fields) if (r := emu.org.find(str(obj), i)) else None) for i in ids]
        return JSONResponse(out)
    if request.method == "DELETE":
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        all_or_none = request.query_params.get("allOrNone", "false").lower() == "true"
        items: list[Any] = ids
    else:
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise ApiError(400, "JSON_PARSER_ERROR", "records is required")
        items, all_or_none = body["records"], bool(body.get("allOrNone"))
    if len(items) > MAX_COLLECTION:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records "
                                                 "into this call")
    org = emu.org
    snapshot = (copy.deepcopy(org.records), copy.deepcopy(org.deleted), len(org.events)) if all_or_none else None
    results: list[dict[str, Any]] = []
    failed = False
    origin = call_origin(request)
    repeated = _repeated_keys(emu, items, str(obj), field) if field is not None else set()
    for index, item in enumerate(items):
        try:
            if index in repeated:
                raise ApiError(400, "DUPLICATE_VALUE", "Duplicate external id specified: "
                                                       f"{_external_id(emu, item, str(obj), field)}", [str(field)])
            results.append(_collection_item(emu, request, item, obj, field, origin))
        except ApiError as error:
            failed = True
            result: dict[str, Any] = {"success": False, "errors": [error.result_error()]}
            if isinstance(item, str):
                result["id"] = item
            elif isinstance(item, dict) and item.get("Id"):
                result["id"] = item["Id"]
            results.append(result)
    if failed and snapshot is not None:
        org.records, org.deleted = snapshot[0], snapshot[1]
        org.reindex()
        del org.events[snapshot[2]:]
        rolled = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                  "message": "Record rolled back because not all records were valid and the request was "
                             "using AllOrNone header", "fields": []}
        results = [r if not r["success"] else {"id": r["id"] if request.method != "POST" else None,
                                               "success": False, "errors": [rolled]} for r in results]
        for r in results:
            if r.get("id") is None:
                r.pop("id", None)
    return JSONResponse(results)


def _external_id(emu: Emulator, item: Any, obj: str, field: str | None) -> Any:
    """The external id value an upsert record carries (its field name matched case-insensitively)."""
    if not isinstance(item, dict) or field is None:
        return None
    fdef = emu.org.schema(obj).field(field)
    canonical = (fdef.name if fdef else field).lower()
    return next((v for k, v in item.items() if k.lower() == canonical), None)


def _repeated_keys(emu: Emulator, items: list[Any], obj: str, field: str) -> set[int]:
    """Positions of upsert records whose external id value another record of the call repeats.

    Salesforce refuses every one of them (``DUPLICATE_VALUE``, "Duplicate external id specified")
    and writes none: it cannot tell which should win. Values match case-insensitively, as the
    upsert itself matches them.
    """
    positions: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        value = _external_id(emu, item, obj, field)
        if value not in (None, ""):
            positions.setdefault(str(value).lower(), []).append(index)
    return {i for found in positions.values() if len(found) > 1 for i in found}


def _collection_item(emu: Emulator, request: Request, item: Any, obj: str | None, field: str | None,
                     origin: str | None) -> dict[str, Any]:
    org = emu.org
    if request.method == "DELETE":
        record_obj = org.object_of(str(item))
        if record_obj is None or not _ID.match(str(item)):
            raise ApiError(400, "MALFORMED_ID", f"malformed id {item}")
        _check_lock(emu, str(item))
        org.delete(record_obj, str(item), origin=origin)
        return {"id": item, "success": True, "errors": []}
    if not isinstance(item, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "record must be an object")
    record_type = (item.get("attributes") or {}).get("type") or obj
    if not record_type:
        raise ApiError(400, "INVALID_TYPE", "Must specify a type in attributes")
    body = {k: val for k, val in item.items() if k != "attributes"}
    if field is not None:
        fdef = org.schema(str(record_type)).field(field)
        value = body.pop(fdef.name if fdef else field, None)
        return _upsert_one(emu, request, str(record_type), field, value, body)
    if request.method == "POST":
        if body.get("Id"):
            raise ApiError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        _check_lock(emu)
        record = org.create(str(record_type), body, origin=origin)
        return {"id": record["Id"], "success": True, "errors": []}
    record_id = str(body.pop("Id", "") or "")
    if not _ID.match(record_id):
        raise ApiError(400, "MALFORMED_ID", f"malformed id {record_id}", ["Id"])
    _check_lock(emu, record_id)
    org.update(str(record_type), record_id, body, origin=origin)
    return {"id": org.get(str(record_type), record_id)["Id"], "success": True, "errors": []}


_V = r"v(?P<v>\d+\.\d)"
#: (methods, path regex under /services/data/, handler)
ROUTES: list[tuple[frozenset[str], re.Pattern[str], Handler]] = [
    (frozenset({"GET"}), re.compile(rf"^{_V}/?$"), resources),
    (frozenset({"GET"}), re.compile(rf"^{_V}/limits/?$"), limits),
    (frozenset({"GET"}), re.compile(rf"^{_V}/sobjects/?$"), global_describe),
    (frozenset({"GET"}), re.compile(rf"^{_V}/sobjects/(?P<obj>\w+)/?$"), sobject_info),
    (frozenset({"POST"}), re.compile(rf"^{_V}/sobjects/(?P<obj>\w+)/?$"), create),
    (frozenset({"GET"}), re.compile(rf"^{_V}/sobjects/(?P<obj>\w+)/describe/?$"), describe),
    (frozenset({"GET", "PATCH", "DELETE"}), re.compile(rf"^{_V}/sobjects/(?P<obj>\w+)/(?P<key>\w+)/?$"),
     sobject_key),
    (frozenset({"GET", "PATCH", "DELETE", "POST"}),
     re.compile(rf"^{_V}/sobjects/(?P<obj>\w+)/(?P<field>\w+)/(?P<value>[^/]+)/?$"), by_external_id),
    (frozenset({"GET"}), re.compile(rf"^{_V}/(?P<resource>query|queryAll)/?$"), query),
    (frozenset({"GET"}), re.compile(rf"^{_V}/(?P<resource>query|queryAll)/(?P<locator>[\w-]+)/?$"), query_more),
    (frozenset({"POST", "PATCH", "DELETE"}), re.compile(rf"^{_V}/composite/sobjects/?$"), collections),
    (frozenset({"GET"}), re.compile(rf"^{_V}/composite/sobjects/(?P<obj>\w+)/?$"), collections),
    (frozenset({"PATCH"}), re.compile(rf"^{_V}/composite/sobjects/(?P<obj>\w+)/(?P<field>\w+)/?$"), collections),
]

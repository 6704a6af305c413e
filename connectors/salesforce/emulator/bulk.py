"""Bulk API 2.0 query jobs: ``jobs/query`` create, status, CSV results paged by ``Sforce-Locator``."""

from __future__ import annotations

import base64
import csv
import io
import json
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.ids import format_datetime
from connectors.salesforce.emulator.query import execute, flatten
from connectors.salesforce.emulator.rest import Handler
from connectors.salesforce.emulator.soql import Query, parse
from connectors.salesforce.emulator.state import Emulator

__all__ = ["BULK_ROUTES", "find_job", "job_info", "job_request", "new_job_id"]


def job_info(job: dict[str, Any]) -> dict[str, Any]:
    """A job as Salesforce shows it: without the emulator's own ``_`` keys."""
    return {k: v for k, v in job.items() if not k.startswith("_")}


async def job_request(request: Request) -> dict[str, Any]:
    """The JSON object of a job request (create, state change)."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ApiError(400, "JSON_PARSER_ERROR", "Unexpected character") from None
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize a job from a non-object")
    return body


async def create_job(request: Request, emu: Emulator, v: str) -> Response:
    body = await job_request(request)
    operation = body.get("operation", "query")
    if operation not in ("query", "queryAll"):
        raise ApiError(400, "API_ERROR", f"Invalid operation: {operation}")
    text = str(body.get("query") or "")
    parsed = parse(text)
    if parsed.count or any(isinstance(f, Query) for f in parsed.fields) or parsed.offset:
        raise ApiError(400, "API_ERROR", "FeatureNotEnabled : Parent-to-child relationship, COUNT() and "
                                         "OFFSET are not supported in Bulk API 2.0 queries")
    source = emu.org.schema(parsed.source)
    if any(isinstance(f, tuple) and len(f) == 1 and (d := source.field(f[0])) is not None
           and d.type == "address" for f in parsed.fields):
        raise ApiError(400, "API_ERROR", "FeatureNotEnabled : Selecting compound data not "
                                         "supported in Bulk Query")
    result = execute(emu.org, text, include_deleted=operation == "queryAll")
    job_id = new_job_id()
    job = {"id": job_id, "operation": operation, "object": emu.org.schema(parsed.source).name,
           "createdById": emu.org.user_id, "createdDate": format_datetime(emu.org.clock.now()),
           "systemModstamp": format_datetime(emu.org.clock.now()), "state": "UploadComplete",
           "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(v),
           "lineEnding": "LF", "columnDelimiter": "COMMA", "_polls": 0, "_result": result,
           "_columns": _columns(parsed)}
    emu.jobs[job_id] = job
    return JSONResponse(job_info(job))


def _columns(parsed: Query) -> list[str]:
    return [".".join(f) for f in parsed.fields if isinstance(f, tuple)]


def find_job(jobs: dict[str, dict[str, Any]], job_id: str) -> dict[str, Any]:
    """A job of ``jobs`` (query or ingest), or the 404 Salesforce answers for an unknown id."""
    job = jobs.get(job_id)
    if job is None:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    return job


def new_job_id() -> str:
    """A Bulk API 2.0 job id (key prefix 750)."""
    return "750Rx" + secrets.token_hex(5).upper() + "AAA"


async def job_status(request: Request, emu: Emulator, v: str, job_id: str) -> Response:
    job = find_job(emu.jobs, job_id)
    if request.method == "DELETE":
        del emu.jobs[job_id]
        return Response(status_code=204)
    if request.method == "PATCH":
        job["state"] = "Aborted"
        return JSONResponse(job_info(job))
    if job["state"] in ("UploadComplete", "InProgress"):
        job["_polls"] += 1
        job["state"] = "JobComplete" if job["_polls"] > emu.options.bulk_polls else "InProgress"
    if job["state"] == "JobComplete":
        job.update({"numberRecordsProcessed": len(job["_result"]), "retries": 0, "totalProcessingTime": 42})
    return JSONResponse(job_info(job))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)


async def results(request: Request, emu: Emulator, v: str, job_id: str) -> Response:
    job = find_job(emu.jobs, job_id)
    if job["state"] != "JobComplete":
        raise ApiError(400, "API_ERROR", f"Job {job_id} is not complete")
    locator = request.query_params.get("locator")
    start = int(base64.b32decode(locator).decode()) if locator else 0
    size = int(request.query_params.get("maxRecords") or 50000)
    rows = [flatten(r) for r in job["_result"].page(start, size)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(job["_columns"])
    for r in rows:
        writer.writerow([_cell(r.get(c)) for c in job["_columns"]])
    end = start + size
    next_locator = base64.b32encode(str(end).encode()).decode() if end < len(job["_result"]) else "null"
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Sforce-Locator": next_locator, "Sforce-NumberOfRecords": str(len(rows))})


BULK_ROUTES: list[tuple[frozenset[str], str, Handler]] = [
    (frozenset({"POST"}), r"jobs/query/?", create_job),
    (frozenset({"GET", "PATCH", "DELETE"}), r"jobs/query/(?P<job_id>\w+)/?", job_status),
    (frozenset({"GET"}), r"jobs/query/(?P<job_id>\w+)/results/?", results),
]

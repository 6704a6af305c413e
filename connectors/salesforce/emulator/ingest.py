"""Bulk API 2.0 ingest jobs: ``jobs/ingest`` create, one CSV upload, close, status, and the CSV of
successful, failed and unprocessed records.

As in Salesforce: a job is created ``Open``; its data is one ``PUT .../batches`` of CSV (201); a
``PATCH`` to ``UploadComplete`` queues it and ``Aborted`` drops it. Rows are processed one by one
with the org's own validation (a failed row does not fail the others), then the job is
``JobComplete`` with ``numberRecordsProcessed`` and ``numberRecordsFailed``. An empty cell leaves
the field alone; ``#N/A`` sets it to null. Failed rows carry ``sf__Error`` as
``CODE:message:fields --``; successful ones ``sf__Id`` and ``sf__Created``. Result rows are not
promised in input order by Salesforce; here they happen to be.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.salesforce.emulator.bulk import find_job, job_info, job_request, new_job_id
from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.ids import format_datetime
from connectors.salesforce.emulator.rest import Handler, call_origin
from connectors.salesforce.emulator.state import Emulator

__all__ = ["INGEST_ROUTES"]

OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
_DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^",
               "BACKQUOTE": "`"}
_LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
#: Bulk API 2.0 refuses an upload over 100 MB (150 MB base64 encoded).
MAX_UPLOAD = 100 * 1024 * 1024


async def create_job(request: Request, emu: Emulator, v: str) -> Response:
    body = await job_request(request)
    operation = body.get("operation")
    if operation not in OPERATIONS:
        raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
    obj = emu.org.schema(str(body.get("object") or "")).name
    external = body.get("externalIdFieldName")
    if operation == "upsert":
        field = emu.org.schema(obj).field(str(external or ""))
        if field is None or not (field.external_id or field.name == "Id"):
            raise ApiError(400, "INVALIDJOB", "InvalidJob : External ID was blank for "
                                              f"{obj}. An External ID must be specified for upsert.")
        external = field.name
    delimiter = str(body.get("columnDelimiter") or "COMMA")
    line_ending = str(body.get("lineEnding") or "LF")
    if delimiter not in _DELIMITERS or line_ending not in _LINE_ENDINGS:
        raise ApiError(400, "INVALIDJOB", "InvalidJob : Invalid columnDelimiter or lineEnding")
    if str(body.get("contentType") or "CSV") != "CSV":
        raise ApiError(400, "INVALIDJOB", "InvalidJob : Invalid contentType: only CSV is supported")
    job_id = new_job_id()
    now = format_datetime(emu.org.clock.now())
    job: dict[str, Any] = {
        "id": job_id, "operation": operation, "object": obj, "createdById": emu.org.user_id,
        "createdDate": now, "systemModstamp": now, "state": "Open",
        "externalIdFieldName": external, "concurrencyMode": "Parallel", "contentType": "CSV",
        "apiVersion": float(v), "contentUrl": f"services/data/v{v}/jobs/ingest/{job_id}/batches",
        "lineEnding": line_ending, "columnDelimiter": delimiter, "jobType": "V2Ingest",
        "numberRecordsProcessed": 0, "numberRecordsFailed": 0, "retries": 0,
        "totalProcessingTime": 0, "_data": None, "_done": [], "_failed": [], "_left": [],
        "_header": [], "_origin": None,
    }
    emu.ingest_jobs[job_id] = job
    return JSONResponse(job_info(job))


async def upload(request: Request, emu: Emulator, v: str, job_id: str) -> Response:
    job = find_job(emu.ingest_jobs, job_id)
    if job["state"] != "Open" or job["_data"] is not None:
        raise ApiError(409, "INVALIDJOBSTATE", "Found multiple contents for job: <"
                       + job_id + ">, please 'Close' / 'Abort' / 'Delete' the current Job then "
                       "create a new Job and make sure you only do 'PUT' once on a given Job.")
    if "csv" not in request.headers.get("content-type", ""):
        raise ApiError(400, "INVALIDJOB", "InvalidJob : Content-Type must be text/csv")
    data = await request.body()
    if len(data) > MAX_UPLOAD:
        raise ApiError(400, "INVALIDJOB", "InvalidJob : the upload is over 100 MB")
    job["_data"] = data.decode("utf-8-sig")
    job["_origin"] = call_origin(request)
    return Response(status_code=201)


async def job_status(request: Request, emu: Emulator, v: str, job_id: str) -> Response:
    job = find_job(emu.ingest_jobs, job_id)
    if request.method == "DELETE":
        if job["state"] in ("Open", "UploadComplete", "InProgress"):
            raise ApiError(400, "API_ERROR", "Job must be in a terminal state to be deleted")
        del emu.ingest_jobs[job_id]
        return Response(status_code=204)
    if request.method == "PATCH":
        wanted = (await job_request(request)).get("state")
        if wanted == "Aborted" and job["state"] in ("Open", "UploadComplete", "InProgress"):
            job["state"] = "Aborted"
            job["_left"] = _rows(job)[1] if job["_data"] else []
        elif wanted == "UploadComplete" and job["state"] == "Open":
            if job["_data"] is None:
                job["state"] = "Failed"
                job["errorMessage"] = "No data was uploaded for this job"
            else:
                job["state"] = "UploadComplete"
        else:
            raise ApiError(400, "INVALIDJOBSTATE", f"Cannot change the state of a job in state "
                                                   f"{job['state']} to {wanted}")
        job["systemModstamp"] = format_datetime(emu.org.clock.now())
        return JSONResponse(job_info(job))
    if job["state"] == "UploadComplete":
        job["state"] = "InProgress"  # seen once, as a client polling a real org sees it
    elif job["state"] == "InProgress":
        _process(emu, job)
    return JSONResponse(job_info(job))


def _rows(job: dict[str, Any]) -> tuple[list[str], list[dict[str, str]]]:
    text = str(job["_data"])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_DELIMITERS[job["columnDelimiter"]])
    lines = [row for row in reader if row]
    if not lines:
        return [], []
    header = [name.strip() for name in lines[0]]
    return header, [dict(zip(header, row, strict=False)) for row in lines[1:]]


def _process(emu: Emulator, job: dict[str, Any]) -> None:
    header, rows = _rows(job)
    job["_header"] = header
    org, obj, origin = emu.org, job["object"], job["_origin"]
    for row in rows:
        values = {k: (None if v == "#N/A" else v) for k, v in row.items() if v != ""}
        try:
            record_id, created = _apply(emu, job, obj, values, origin)
        except ApiError as error:
            job["_failed"].append(({"sf__Id": str(values.get("Id") or ""),
                                    "sf__Error": f"{error.code}:{error.message}:"
                                                 f"{','.join(error.fields or [])} --"}, row))
            continue
        job["_done"].append(({"sf__Id": record_id, "sf__Created": "true" if created else "false"},
                             row))
    job.update({"state": "JobComplete", "numberRecordsProcessed": len(rows),
                "numberRecordsFailed": len(job["_failed"]), "totalProcessingTime": 5 * len(rows),
                "systemModstamp": format_datetime(org.clock.now())})


def _apply(emu: Emulator, job: dict[str, Any], obj: str, values: dict[str, Any],
           origin: str | None) -> tuple[str, bool]:
    org, operation = emu.org, job["operation"]
    if operation == "insert":
        if values.get("Id"):
            raise ApiError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        return str(org.create(obj, values, origin=origin)["Id"]), True
    if operation in ("update", "delete", "hardDelete"):
        record_id = str(values.pop("Id", "") or "")
        if not record_id:
            raise ApiError(400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        if operation == "update":
            return str(org.update(obj, record_id, values, origin=origin)["Id"]), False
        org.delete(obj, record_id, origin=origin)
        if operation == "hardDelete":
            org.deleted[org.schema(obj).name].pop(record_id, None)
        return record_id, False
    field = str(job["externalIdFieldName"])
    key = next((k for k in values if k.lower() == field.lower()), None)
    if key is None or values.get(key) in (None, ""):
        raise ApiError(400, "MISSING_ARGUMENT", f"{field} not specified", [field])
    value = values.pop(key)
    if field == "Id":
        return str(org.update(obj, str(value), values, origin=origin)["Id"]), False
    matches = org.by_external_id(obj, field, value)
    if len(matches) > 1:
        raise ApiError(300, "DUPLICATE_EXTERNAL_ID",
                       f"{field}: more than one record found for external id field: "
                       f"[{', '.join(m['Id'] for m in matches)}]", [field])
    if matches:
        return str(org.update(obj, matches[0]["Id"], values, origin=origin)["Id"]), False
    return str(org.create(obj, {**values, field: value}, origin=origin)["Id"]), True


async def results(request: Request, emu: Emulator, v: str, job_id: str, kind: str) -> Response:
    job = find_job(emu.ingest_jobs, job_id)
    if job["state"] not in ("JobComplete", "Aborted", "Failed"):
        raise ApiError(400, "API_ERROR", f"Job {job_id} is not in a terminal state")
    header = job["_header"] or (_rows(job)[0] if job["_data"] else [])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=_LINE_ENDINGS[job["lineEnding"]],
                        delimiter=_DELIMITERS[job["columnDelimiter"]])
    kind = kind.lower()
    if kind == "unprocessedrecords":
        writer.writerow(header)
        for row in job["_left"]:
            writer.writerow([row.get(c, "") for c in header])
    else:
        entries = job["_done"] if kind == "successfulresults" else job["_failed"]
        extra = ["sf__Id", "sf__Created"] if kind == "successfulresults" else ["sf__Id", "sf__Error"]
        writer.writerow([*extra, *header])
        for outcome, row in entries:
            writer.writerow([*(outcome[c] for c in extra), *(row.get(c, "") for c in header)])
    return Response(out.getvalue(), media_type="text/csv")


INGEST_ROUTES: list[tuple[frozenset[str], str, Handler]] = [
    (frozenset({"POST"}), r"jobs/ingest/?", create_job),
    (frozenset({"GET", "PATCH", "DELETE"}), r"jobs/ingest/(?P<job_id>\w+)/?", job_status),
    (frozenset({"PUT"}), r"jobs/ingest/(?P<job_id>\w+)/batches/?", upload),
    (frozenset({"GET"}),
     r"jobs/ingest/(?P<job_id>\w+)/(?P<kind>successfulResults|failedResults|unprocessed[Rr]ecords)/?",
     results),
]

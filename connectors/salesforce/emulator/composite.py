"""``POST composite``: up to 25 subrequests in order, one API call, with references between them.

A later subrequest uses an earlier one's answer through ``@{referenceId.path}`` in its URL or body
(``@{refAccount.id}``, ``@{refQuery.records[0].Id}``). The answer is always 200 with one
``compositeResponse`` entry per subrequest (``body``, ``httpHeaders``, ``httpStatusCode``,
``referenceId``); only a malformed envelope is a 400 where nothing ran. With ``allOrNone`` the first
failure rolls every change back and the other subrequests report ``PROCESSING_HALTED``; without
it, only the subrequests that reference a failed one are skipped.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.rest import ROUTES, _json
from connectors.salesforce.emulator.state import Emulator

__all__ = ["COMPOSITE_ROUTE", "composite"]

MAX_SUBREQUESTS = 25
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)\.([^}]+)\}")
_REFERENCE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_PREFIX = "/services/data/"
_ROLLED_BACK = "The transaction was rolled back since another operation in the same transaction failed."


class _Unresolved(Exception):
    """A reference to a subrequest that did not run, failed, or has no such value."""


def _lookup(value: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(value, list) or index >= len(value):
                raise KeyError(path)
            value = value[index]
        else:
            if not isinstance(value, dict) or part not in value:
                raise KeyError(path)
            value = value[part]
    return value


def _resolve(value: Any, answers: dict[str, Any]) -> Any:
    """``value`` with every ``@{ref.path}`` replaced from the answers so far."""
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            ref, path = match.group(1), match.group(2)
            if ref not in answers:
                raise _Unresolved(f"Invalid reference specified. No value for {ref}.{path} found in "
                                  f"{ref}. Provided referenceId ('{ref}') might be incorrect or the "
                                  "referenced subrequest was not successful.")
            try:
                found = _lookup(answers[ref], path)
            except KeyError:
                raise _Unresolved(f"Invalid reference specified. No value for {ref}.{path} found "
                                  f"in {ref}.") from None
            return found if isinstance(found, str) else json.dumps(found)

        whole = _REFERENCE.fullmatch(value)
        if whole is not None and whole.group(1) in answers:
            try:
                return _lookup(answers[whole.group(1)], whole.group(2))
            except KeyError:
                pass
        return _REFERENCE.sub(one, value)
    if isinstance(value, list):
        return [_resolve(item, answers) for item in value]
    if isinstance(value, dict):
        return {k: _resolve(v, answers) for k, v in value.items()}
    return value


def _envelope(body: Any) -> list[dict[str, Any]]:
    """The subrequests, checked before any runs (a bad envelope runs nothing)."""
    if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
        raise ApiError(400, "JSON_PARSER_ERROR", "compositeRequest is required")
    subrequests = body["compositeRequest"]
    if not subrequests or len(subrequests) > MAX_SUBREQUESTS:
        raise ApiError(400, "INVALID_API_INPUT",
                       f"Composite requests must have between 1 and {MAX_SUBREQUESTS} subrequests")
    seen: set[str] = set()
    for sub in subrequests:
        if not isinstance(sub, dict) or not all(isinstance(sub.get(k), str)
                                                for k in ("method", "url", "referenceId")):
            raise ApiError(400, "INVALID_API_INPUT",
                           "Each subrequest needs a method, a url and a referenceId")
        ref = sub["referenceId"]
        if not _REFERENCE_ID.match(ref) or ref in seen:
            raise ApiError(400, "INVALID_API_INPUT", f"Invalid or duplicate referenceId: {ref}")
        seen.add(ref)
        headers = {k.lower() for k in (sub.get("httpHeaders") or {})}
        if headers & {"accept", "authorization", "content-type"}:
            raise ApiError(400, "INVALID_API_INPUT",
                           "Accept, Authorization and Content-Type are set by the composite request")
    return list(subrequests)


async def _run_one(request: Request, emu: Emulator, method: str, url: str, body: Any) -> Response:
    parts = urlsplit(url)
    if not parts.path.startswith(_PREFIX):
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    path = parts.path[len(_PREFIX):]
    data = b"" if body is None else json.dumps(body).encode()
    headers = [(b"content-type", b"application/json")]
    origin = request.headers.get("sforce-call-options")
    if origin:
        headers.append((b"sforce-call-options", origin.encode("latin-1")))
    scope = {"type": "http", "method": method.upper(), "path": parts.path,
             "raw_path": parts.path.encode(), "query_string": parts.query.encode(),
             "headers": headers, "app": request.app}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": data, "more_body": False}

    sub = Request(scope, receive)
    for methods, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match is not None and sub.method in methods:
            version = match.group("v")
            if float(version) > float(emu.org.api_version):
                break
            return await handler(sub, emu, **match.groupdict())
    raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _entry(ref: str, status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"body": body, "httpHeaders": headers or {}, "httpStatusCode": status, "referenceId": ref}


def _halted(ref: str, message: str = _ROLLED_BACK) -> dict[str, Any]:
    return _entry(ref, 400, [{"errorCode": "PROCESSING_HALTED", "message": message}])


async def composite(request: Request, emu: Emulator, v: str) -> Response:
    envelope = await _json(request)
    subrequests = _envelope(envelope)
    all_or_none = bool(envelope.get("allOrNone"))
    org = emu.org
    snapshot = ((copy.deepcopy(org.records), copy.deepcopy(org.deleted), len(org.events))
                if all_or_none else None)
    answers: dict[str, Any] = {}
    out: list[dict[str, Any]] = []
    failed_at: int | None = None
    for index, sub in enumerate(subrequests):
        ref = sub["referenceId"]
        try:
            url = _resolve(sub["url"], answers)
            body = _resolve(sub.get("body"), answers)
        except _Unresolved as unresolved:
            out.append(_halted(ref, str(unresolved)))
            if all_or_none:
                failed_at = index
                break
            continue
        try:
            response = await _run_one(request, emu, sub["method"], str(url), body)
        except ApiError as error:
            out.append(_entry(ref, error.status, error.body()))
            if all_or_none:
                failed_at = index
                break
            continue
        parsed = json.loads(bytes(response.body)) if response.body else None
        headers: dict[str, str] = {}
        if response.status_code == 201 and isinstance(parsed, dict) and parsed.get("id"):
            obj = _object_of(str(url))
            headers["Location"] = f"/services/data/v{v}/sobjects/{obj}/{parsed['id']}"
        out.append(_entry(ref, response.status_code, parsed, headers))
        if response.status_code < 300:
            answers[ref] = parsed
        elif all_or_none:
            failed_at = index
            break
    if failed_at is not None and snapshot is not None:
        org.records, org.deleted = snapshot[0], snapshot[1]
        org.reindex()
        del org.events[snapshot[2]:]
        out = [entry if i == failed_at else _halted(entry["referenceId"]) for i, entry in enumerate(out)]
        out += [_halted(sub["referenceId"]) for sub in subrequests[failed_at + 1:]]
    return JSONResponse({"compositeResponse": out})


def _object_of(url: str) -> str:
    match = re.search(r"/sobjects/(\w+)", urlsplit(url).path)
    return match.group(1) if match else ""


COMPOSITE_ROUTE = (frozenset({"POST"}), re.compile(r"^v(?P<v>\d+\.\d)/composite/?$"), composite)

"""QuickBooks fault envelopes turned into typed ``QUICKBOOKS:*`` errors: the one code table.

QuickBooks answers failures in several shapes, and a naive JSON client crashes on half of them:

- the standard envelope ``{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type"}}``,
  on 4xx/5xx and sometimes on a 200 (batch items carry it per item);
- the gateway's lower-case envelope ``{"fault": {"error": [{"message", "detail", "code"}]}}`` on
  authentication failures;
- XML ``<IntuitResponse><Fault><Error code="3001">`` on throttling (429), even when JSON was asked for;
- bare HTML pages from the load balancer during outages.

:func:`error_from_response` reads all of them; :data:`FAULT_CODES` decides the kind and whether
another try can succeed. Messages and details never contain tokens: they are built from the fault
text only and passed through :func:`runtime.redact`.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from runtime import SpliceError, redact

__all__ = [
    "FAULT_CODES",
    "QuickBooksFault",
    "THROTTLE_RETRY_AFTER",
    "error_from_faults",
    "error_from_response",
    "faults_in",
    "is_fault_payload",
    "parse_faults",
    "quickbooks_error",
    "reconnect_required",
]

NAMESPACE = "QUICKBOOKS"
#: Intuit says to wait a minute after a throttle answer; it sends no ``Retry-After``.
THROTTLE_RETRY_AFTER = 60.0

#: Fault code -> (kind, retryable). Codes not listed fall back to the HTTP status (see ``_by_status``).
FAULT_CODES: dict[str, tuple[str, bool]] = {
    "100": ("AUTHENTICATION", False),
    "120": ("AUTHORIZATION", False),
    "500": ("UNSUPPORTED_OPERATION", False),
    "610": ("NOT_FOUND", False),
    "2010": ("VALIDATION", False),
    "2020": ("VALIDATION", False),
    "2050": ("VALIDATION", False),
    "2170": ("VALIDATION", False),
    "2500": ("INVALID_REFERENCE", False),
    "3001": ("THROTTLED", True),
    "3100": ("AUTHORIZATION", False),
    "3200": ("AUTHENTICATION", False),
    "4000": ("INVALID_QUERY", False),
    "4001": ("INVALID_QUERY", False),
    "4002": ("INVALID_QUERY", False),
    # Re-read, re-apply our own fields and send again: update handles it, the flow may retry too.
    "5010": ("STALE_OBJECT", True),
    "6000": ("VALIDATION", False),
    "6070": ("VALIDATION", False),
    "6140": ("DUPLICATE_DOC_NUMBER", False),
    "6190": ("COMPANY_STATUS", False),
    "6210": ("PERIOD_CLOSED", False),
    "6240": ("DUPLICATE_NAME", False),
    "6540": ("VALIDATION", False),
}


@dataclass(frozen=True, slots=True)
class QuickBooksFault:
    """One ``Error`` element of a fault, whichever envelope it came in."""

    code: str
    message: str = ""
    detail: str = ""
    element: str = ""
    fault_type: str = ""


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def faults_in(payload: Any) -> list[QuickBooksFault]:
    """The errors of a parsed JSON fault (either casing), or ``[]`` when ``payload`` is no fault."""
    if not isinstance(payload, Mapping):
        return []
    fault = payload.get("Fault")
    upper = True
    if not isinstance(fault, Mapping):
        fault, upper = payload.get("fault"), False
    if not isinstance(fault, Mapping):
        return []
    errors = fault.get("Error" if upper else "error") or []
    if isinstance(errors, Mapping):
        errors = [errors]
    fault_type = _text(fault.get("type"))
    out = []
    for err in errors:
        if not isinstance(err, Mapping):
            continue
        message = err.get("Message") if upper else err.get("message")
        detail = err.get("Detail") if upper else err.get("detail")
        out.append(QuickBooksFault(code=_text(err.get("code")), message=_text(message),
                                   detail=_text(detail), element=_text(err.get("element")),
                                   fault_type=fault_type))
    return out or [QuickBooksFault(code="", fault_type=fault_type)]


def is_fault_payload(payload: Any) -> bool:
    """Whether a parsed JSON body is a fault (QuickBooks may send one with status 200)."""
    return isinstance(payload, Mapping) and (
        isinstance(payload.get("Fault"), Mapping) or isinstance(payload.get("fault"), Mapping))


def _xml_faults(body: bytes) -> list[QuickBooksFault]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    out = []
    for fault in root.iter():
        if fault.tag.rsplit("}", 1)[-1] != "Fault":
            continue
        for err in fault:
            if err.tag.rsplit("}", 1)[-1] != "Error":
                continue
            fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in err}
            out.append(QuickBooksFault(code=err.get("code", ""), message=fields.get("Message", ""),
                                       detail=fields.get("Detail", ""),
                                       element=err.get("element", ""),
                                       fault_type=fault.get("type", "")))
    return out


def parse_faults(body: bytes, content_type: str = "") -> list[QuickBooksFault]:
    """Faults from a raw body, sniffing JSON or XML whatever ``Content-Type`` claims."""
    stripped = body.lstrip()
    if stripped.startswith((b"{", b"[")):
        try:
            return faults_in(json.loads(stripped))
        except ValueError:
            return []
    if stripped.startswith(b"<") and not stripped[:15].lower().startswith((b"<!doctype", b"<html")):
        return _xml_faults(stripped)
    return []


_ERRORCODE = re.compile(r"errorCode=0*(\d+)")


def _code_of(fault: QuickBooksFault) -> str:
    code = fault.code.strip()
    if code.isdigit():
        return str(int(code))
    found = _ERRORCODE.search(fault.message)
    return str(int(found.group(1))) if found else code


def _by_status(status: int | None) -> tuple[str, bool]:
    if status is None:
        return "FAULT", False
    if status == 429:
        return "THROTTLED", True
    if status == 401:
        return "AUTHENTICATION", False
    if status == 403:
        return "AUTHORIZATION", False
    if status == 404:
        return "NOT_FOUND", False
    if status >= 500:
        return "SERVER_ERROR", True
    return "VALIDATION" if status == 400 else "FAULT", False


def quickbooks_error(kind: str, message: str, *, retryable: bool = False,
                     retry_after: float | None = None, status: int | None = None,
                     details: Mapping[str, Any] | None = None) -> SpliceError:
    """A ``QUICKBOOKS:<kind>`` error with a redacted message."""
    return SpliceError(redact(message), error_type=f"{NAMESPACE}:{kind}", retryable=retryable,
                       retry_after=retry_after, status=status, details=details)


def error_from_faults(faults: Sequence[QuickBooksFault], *, status: int | None = None,
                      intuit_tid: str | None = None) -> SpliceError:
    """The typed error for a fault's errors; the first error decides the kind, all are kept."""
    first = faults[0] if faults else QuickBooksFault(code="")
    code = _code_of(first)
    if code == "3100" and status is not None and status >= 500:
        kind, retryable = "SERVER_ERROR", True
    elif code in FAULT_CODES:
        kind, retryable = FAULT_CODES[code]
    elif code.isdigit() and int(code) >= 10000:
        kind, retryable = "SERVER_ERROR", True
    else:
        kind, retryable = _by_status(status)
    text = first.message or "QuickBooks answered with a fault"
    if first.detail and first.detail not in text:
        text = f"{text}: {first.detail}"
    details: dict[str, Any] = {"code": code, "message": redact(first.message),
                               "detail": redact(first.detail), "element": first.element,
                               "faultType": first.fault_type}
    if intuit_tid:
        details["intuit_tid"] = intuit_tid
    if len(faults) > 1:
        details["errors"] = [{"code": _code_of(f), "message": redact(f.message),
                              "detail": redact(f.detail), "element": f.element} for f in faults]
    return quickbooks_error(kind, f"{text} (code {code or '?'})", retryable=retryable,
                            retry_after=THROTTLE_RETRY_AFTER if kind == "THROTTLED" else None,
                            status=status, details=details)


def error_from_response(response: httpx.Response) -> SpliceError:
    """The typed error for a failed (or 200-with-``Fault``) response; the body must be read."""
    status = response.status_code
    tid = response.headers.get("intuit_tid")
    faults = parse_faults(response.content, response.headers.get("content-type", ""))
    if faults:
        return error_from_faults(faults, status=status, intuit_tid=tid)
    kind, retryable = _by_status(status)
    details = {"intuit_tid": tid} if tid else {}
    return quickbooks_error(kind, f"QuickBooks answered HTTP {status} without a fault body",
                            retryable=retryable, status=status, details=details,
                            retry_after=THROTTLE_RETRY_AFTER if kind == "THROTTLED" else None)


def reconnect_required(realm: str, reason: str) -> SpliceError:
    """The connection lost its authorization for good: a person must authorize the app again."""
    return quickbooks_error(
        "RECONNECT_REQUIRED",
        f"QuickBooks realm {realm} needs to be connected again ({reason}); "
        "run `splice quickbooks-connect`",
        details={"realmId": realm},
    )

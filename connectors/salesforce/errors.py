"""Salesforce failures as typed ``SALESFORCE:*`` errors: the one status/errorCode table.

Salesforce reports errors as a JSON array ``[{"message", "errorCode", "fields"}]`` (REST) or, inside
collection results, as per-record ``{"statusCode", "message", "fields"}`` objects on an HTTP 200. Both
end up here, so every part of the connector agrees on which failures are worth another try:
row locks, unavailability and timeouts are; bad SOQL, unknown fields and duplicates are not.

Messages and details never carry the access token, the Authorization header or a session id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from runtime import SpliceError, redact

__all__ = [
    "ERROR_CODES",
    "SalesforceError",
    "error_from_body",
    "error_from_response",
    "error_from_result",
    "is_session_expired",
]


class SalesforceError(SpliceError):
    """A failure reported by (or on the way to) Salesforce."""

    default_type = "SALESFORCE:ERROR"


#: errorCode -> (kind, retryable, retry_after seconds). The kind becomes ``SALESFORCE:<kind>``.
ERROR_CODES: dict[str, tuple[str, bool, float | None]] = {
    "INVALID_SESSION_ID": ("INVALID_SESSION", False, None),
    "INVALID_AUTH_HEADER": ("INVALID_SESSION", False, None),
    "REQUEST_LIMIT_EXCEEDED": ("REQUEST_LIMIT_EXCEEDED", True, 900.0),
    "UNABLE_TO_LOCK_ROW": ("UNABLE_TO_LOCK_ROW", True, None),
    "SERVER_UNAVAILABLE": ("SERVER_UNAVAILABLE", True, None),
    "REQUEST_RUNNING_TOO_LONG": ("TIMEOUT", True, None),
    "INVALID_QUERY_LOCATOR": ("INVALID_QUERY_LOCATOR", True, None),
    "QUERY_TIMEOUT": ("QUERY_TIMEOUT", False, None),
    "INVALID_FIELD": ("INVALID_FIELD", False, None),
    "INVALID_FIELD_FOR_INSERT_UPDATE": ("INVALID_FIELD", False, None),
    "MALFORMED_QUERY": ("MALFORMED_QUERY", False, None),
    "INVALID_TYPE": ("INVALID_TYPE", False, None),
    "NOT_FOUND": ("NOT_FOUND", False, None),
    "ENTITY_IS_DELETED": ("ENTITY_IS_DELETED", False, None),
    "ENTITY_IS_LOCKED": ("ENTITY_IS_LOCKED", False, None),
    "DUPLICATE_VALUE": ("DUPLICATE_VALUE", False, None),
    "DUPLICATES_DETECTED": ("DUPLICATES_DETECTED", False, None),
    "DUPLICATE_EXTERNAL_ID": ("DUPLICATE_VALUE", False, None),
    "REQUIRED_FIELD_MISSING": ("VALIDATION", False, None),
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": ("VALIDATION", False, None),
    "FIELD_INTEGRITY_EXCEPTION": ("VALIDATION", False, None),
    "STRING_TOO_LONG": ("VALIDATION", False, None),
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": ("VALIDATION", False, None),
    "JSON_PARSER_ERROR": ("VALIDATION", False, None),
    "INVALID_CROSS_REFERENCE_KEY": ("INVALID_CROSS_REFERENCE_KEY", False, None),
    "MALFORMED_ID": ("MALFORMED_ID", False, None),
    "STORAGE_LIMIT_EXCEEDED": ("STORAGE_LIMIT_EXCEEDED", False, None),
    "ALL_OR_NONE_OPERATION_ROLLED_BACK": ("ROLLED_BACK", True, None),
    "PROCESSING_HALTED": ("ROLLED_BACK", True, None),
    "API_DISABLED_FOR_ORG": ("FORBIDDEN", False, None),
    "INSUFFICIENT_ACCESS_OR_READONLY": ("FORBIDDEN", False, None),
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": ("FORBIDDEN", False, None),
    "UNSUPPORTED_API_VERSION": ("UNSUPPORTED_API_VERSION", False, None),
}

#: HTTP status -> (kind, retryable) when the body names no known errorCode.
_STATUS: dict[int, tuple[str, bool]] = {
    300: ("MULTIPLE_MATCHES", False),
    400: ("BAD_REQUEST", False),
    401: ("INVALID_SESSION", False),
    403: ("FORBIDDEN", False),
    404: ("NOT_FOUND", False),
    405: ("METHOD_NOT_ALLOWED", False),
    409: ("CONFLICT", False),
    410: ("UNSUPPORTED_API_VERSION", False),
    412: ("PRECONDITION_FAILED", False),
    414: ("URI_TOO_LONG", False),
    415: ("UNSUPPORTED_MEDIA_TYPE", False),
    500: ("SERVER_ERROR", True),
    502: ("SERVER_UNAVAILABLE", True),
    503: ("SERVER_UNAVAILABLE", True),
    504: ("TIMEOUT", True),
}

_DUPLICATE_ID = re.compile(r"record with id: ([a-zA-Z0-9]{15,18})")


def _classify(code: str | None, status: int | None, message: str) -> tuple[str, bool, float | None]:
    if code and code in ERROR_CODES:
        kind, retryable, retry_after = ERROR_CODES[code]
        if code == "REQUEST_LIMIT_EXCEEDED" and "ConcurrentRequests" in message:
            retry_after = 5.0
        return kind, retryable, retry_after
    if status is not None and status in _STATUS:
        kind, retryable = _STATUS[status]
        return kind, retryable, None
    if status is not None and status >= 500:
        return "SERVER_ERROR", True, None
    return (code or "ERROR"), False, None


def _error_details(code: str | None, message: str, fields: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if code:
        details["errorCode"] = code
    if isinstance(fields, list) and fields:
        details["fields"] = [str(f) for f in fields]
    if code in ("DUPLICATE_VALUE", "DUPLICATES_DETECTED"):
        match = _DUPLICATE_ID.search(message)
        if match:
            details["duplicateId"] = match.group(1)
    return details


def error_from_body(status: int, body: Any, *, context: str = "") -> SalesforceError:
    """The error for a non-2xx REST answer whose parsed JSON body is ``body``."""
    first: Mapping[str, Any] = {}
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        first = body[0]
    elif isinstance(body, Mapping):
        first = body
    code = first.get("errorCode") or first.get("statusCode")
    message = str(first.get("message") or first.get("error_description") or f"HTTP {status}")
    message = redact(message)
    kind, retryable, retry_after = _classify(code, status, message)
    details = _error_details(code, message, first.get("fields"))
    if status == 300 and isinstance(body, list):
        details["matches"] = [str(u).rsplit("/", 1)[-1] for u in body if isinstance(u, str)]
        message = f"{len(details['matches'])} records match the external id"
    if context:
        message = f"{context}: {message}"
    return SalesforceError(message, error_type=f"SALESFORCE:{kind}", retryable=retryable,
                           retry_after=retry_after, status=status, details=details)


def error_from_response(response: httpx.Response, *, context: str = "") -> SalesforceError:
    """The error for a non-2xx REST answer (its body must have been read)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    return error_from_body(response.status_code, body, context=context)


def error_from_result(result: Mapping[str, Any], *, index: int | None = None,
                      context: str = "") -> SalesforceError:
    """The error of one failed record in a collections answer (``statusCode`` style).

    Its type is the one the same failure of a single-record call gets (one table for both), so a
    flow's ``on-error`` matches a record written in a batch as it matches one written alone.
    """
    errors = result.get("errors") or [{}]
    first = errors[0] if isinstance(errors[0], Mapping) else {}
    code = first.get("statusCode") or first.get("errorCode")
    message = redact(str(first.get("message") or "record failed"))
    kind, retryable, retry_after = _classify(code, None, message)
    details = _error_details(code, message, first.get("fields"))
    if index is not None:
        details["index"] = index
    if context:
        message = f"{context}: {message}"
    return SalesforceError(message, error_type=f"SALESFORCE:{kind}", retryable=retryable,
                           retry_after=retry_after, details=details)


def is_session_expired(response: httpx.Response) -> bool:
    """Whether a data-call answer means "get a new token and replay once" (401)."""
    return response.status_code == 401

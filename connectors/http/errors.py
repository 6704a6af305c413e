"""HTTP responses that failed, as typed ``HTTP:*`` errors."""

from __future__ import annotations

import httpx

from runtime import http_status_error, parse_retry_after, redact

__all__ = ["raise_for_status"]

_BODY_EXCERPT = 500


def raise_for_status(response: httpx.Response) -> None:
    """Raise the ``HTTP:<KIND>`` error of a 4xx/5xx response (with a short, redacted body excerpt)."""
    if response.status_code < 400:
        return
    excerpt = redact(response.text[:_BODY_EXCERPT]) if response.content else ""
    raise http_status_error(
        response.status_code,
        f"{response.request.method} {response.request.url.path} returned {response.status_code}",
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        details={"status": response.status_code, "body": excerpt},
    )


"""Typed errors of flow executions.

Every failure that reaches a flow's ``on-error`` chain is a :class:`SpliceError`. It carries a type
``NAMESPACE:KIND`` that handlers match on (exactly, by ``NAMESPACE:*`` or by ``ANY``), whether trying
again may succeed, an optional ``retry_after`` hint from the remote side, and ``details`` that are safe
to log, trace and dead-letter: never a token, password or secret.

The tree::

    SpliceError                      any typed failure (error_type "NS:KIND")
    ├── TransformError               TRANSFORM:*   a JSONata expression failed at run time
    ├── HttpError                    HTTP:*        transport faults and HTTP status codes
    ├── ConnectionConfigError        CONNECTION:*  a connection is missing or misconfigured
    ├── FlowExecutionError           FLOW:*        routing failures (unknown flow-ref, foreach on
    │                                              a non-collection, ...)
    └── <connector errors>           SALESFORCE:*, QUICKBOOKS:*, ... raised by connector plugins

Connectors subclass :class:`SpliceError` or raise it with their own type; the runtime never needs to
know a connector's error classes, only their ``error_type``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

__all__ = [
    "ConfigurationError",
    "ConnectionConfigError",
    "FlowExecutionError",
    "HttpError",
    "SpliceError",
    "TransformError",
    "error_matches",
    "http_status_error",
    "map_http_errors",
]


class ConfigurationError(ValueError):
    """A runtime setting that cannot be used (a store URL, an exporter, a policy, two flows on one
    route): found when the runtime is put together, before any execution, so it is not a flow's
    :class:`SpliceError`. The CLI reports it in one line as the user's to fix, not as a bug."""


class SpliceError(Exception):
    """A failure with a type, a disposition and details safe to show anywhere."""

    #: Default type of instances of this class when none is given.
    default_type = "SPLICE:ERROR"

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = (error_type or self.default_type).upper()
        if ":" not in self.error_type:
            raise ValueError(f"error_type must be NAMESPACE:KIND, got {self.error_type!r}")
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.details: dict[str, Any] = dict(details or {})

    @property
    def namespace(self) -> str:
        """The part before the colon, e.g. ``QUICKBOOKS``."""
        return self.error_type.split(":", 1)[0]

    @property
    def kind(self) -> str:
        """The part after the colon, e.g. ``STALE_OBJECT``."""
        return self.error_type.split(":", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in dead letters, HTTP error bodies and ``vars.error``."""
        out: dict[str, Any] = {
            "type": self.error_type,
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.status is not None:
            out["status"] = self.status
        if self.retry_after is not None:
            out["retryAfter"] = self.retry_after
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpliceError:
        """Rebuild an error stored by :meth:`to_dict` (dead letters, replays)."""
        return cls(
            str(data.get("message", "")),
            error_type=str(data.get("type", cls.default_type)),
            retryable=bool(data.get("retryable", False)),
            retry_after=data.get("retryAfter"),
            status=data.get("status"),
            details=data.get("details"),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.error_type}: {self.message})"

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


class TransformError(SpliceError):
    """A JSONata expression failed while evaluating a message."""

    default_type = "TRANSFORM:EVALUATION"


class HttpError(SpliceError):
    """An HTTP call failed: no answer (``HTTP:TIMEOUT``, ``HTTP:CONNECTIVITY``) or a bad status."""

    default_type = "HTTP:ERROR"


class ConnectionConfigError(SpliceError):
    """A step names a connection that is not configured, or whose settings are unusable."""

    default_type = "CONNECTION:CONFIG"


class FlowExecutionError(SpliceError):
    """The flow itself could not route the message (e.g. ``FLOW:NOT_FOUND`` for a flow-ref)."""

    default_type = "FLOW:ERROR"


#: HTTP status codes worth another try, and the ``HTTP:*`` kind each maps to.
_STATUS_KINDS: dict[int, tuple[str, bool]] = {
    400: ("BAD_REQUEST", False),
    401: ("UNAUTHORIZED", False),
    403: ("FORBIDDEN", False),
    404: ("NOT_FOUND", False),
    405: ("METHOD_NOT_ALLOWED", False),
    408: ("TIMEOUT", True),
    409: ("CONFLICT", False),
    415: ("UNSUPPORTED_MEDIA_TYPE", False),
    422: ("UNPROCESSABLE_ENTITY", False),
    429: ("TOO_MANY_REQUESTS", True),
    500: ("INTERNAL_SERVER_ERROR", True),
    502: ("BAD_GATEWAY", True),
    503: ("SERVICE_UNAVAILABLE", True),
    504: ("TIMEOUT", True),
}


def http_status_error(status: int, message: str, *, retry_after: float | None = None,
                      details: Mapping[str, Any] | None = None) -> HttpError:
    """The ``HTTP:*`` error for a response status, with the right retryable flag."""
    kind, retryable = _STATUS_KINDS.get(
        status, ("SERVER_ERROR", True) if status >= 500 else ("CLIENT_ERROR", False)
    )
    return HttpError(message, error_type=f"HTTP:{kind}", retryable=retryable,
                     retry_after=retry_after, status=status, details=details)


@contextmanager
def map_http_errors(namespace: str = "HTTP") -> Iterator[None]:
    """Translate httpx transport exceptions into typed errors at the connector boundary.

    ``namespace`` lets a connector keep its own prefix (``SALESFORCE:TIMEOUT``) while sharing the
    mapping. The request URL is deliberately left out of the message: it may carry a token.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise HttpError(f"request timed out ({type(exc).__name__})",
                        error_type=f"{namespace}:TIMEOUT", retryable=True) from None
    except httpx.TransportError as exc:
        raise HttpError(f"could not reach the server ({type(exc).__name__})",
                        error_type=f"{namespace}:CONNECTIVITY", retryable=True) from None


def error_matches(pattern: str, error_type: str) -> bool:
    """Whether an ``on-error`` pattern (``NS:KIND``, ``NS:*`` or ``ANY``) matches an error type."""
    pattern = pattern.strip().upper()
    if pattern in ("ANY", "*", "*:*"):
        return True
    if pattern.endswith(":*"):
        return error_type.split(":", 1)[0] == pattern[:-2]
    return pattern == error_type

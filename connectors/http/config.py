"""Settings of an ``http`` connection: where requests go and how they are sent."""

from __future__ import annotations

from runtime import Param

__all__ = ["CONNECTION_PARAMS"]

CONNECTION_PARAMS: tuple[Param, ...] = (
    Param("base-url", summary="Prefix of every request path, e.g. https://api.example.com/v1",
          dynamic=False),
    Param("headers", type="object", summary="Headers sent with every request", dynamic=False),
    Param("timeout", type="duration", default=30, summary="Seconds (or 5s, 1m) before a request "
          "times out with HTTP:TIMEOUT", dynamic=False),
    Param("verify-tls", type="boolean", default=True, summary="Check server certificates "
          "(switch off only for a local test server)", dynamic=False),
    Param("max-connections", type="integer", default=50, summary="Pooled connections",
          dynamic=False),
    Param("retry-attempts", type="integer", default=2, summary="Retries of 429/503 (any method) "
          "and 5xx/timeouts (idempotent methods) inside the connection", dynamic=False),
    Param("username", summary="Basic auth user", dynamic=False),
    Param("password", summary="Basic auth password", secret=True, dynamic=False),
    Param("bearer-token", summary="Sent as Authorization: Bearer", secret=True, dynamic=False),
)

"""API policies in front of the runtime's own HTTP endpoints: client id enforcement and rate limits.

Configured in ``settings.server.policies`` of a project::

    settings:
      server:
        policies:
          - client-id:                      # clients send client_id / client_secret headers
              clients: { "${api.client-id}": "${secure::api.client-secret}" }
              paths: ["/api/*"]
          - api-key: { keys: ["${secure::api.key}"], header: X-API-Key, paths: ["/api/*"] }
          - rate-limit: { requests: 100, period: 60s, key: client, paths: ["/*"], exclude: ["/webhooks/*"] }

Each policy applies to the paths matching one of ``paths`` (glob, default every path) and none of
``exclude``; ``/health`` and ``/ready`` are never policed. A refused request gets 401 or 429 with a
JSON body; a 429 carries ``Retry-After``.

A rate limit with ``key: client`` counts per client id only once a ``client-id`` policy listed before
it has checked that client's secret; otherwise it counts per remote address, so an unchecked
``client_id`` header never buys a fresh quota. Its windows are whole periods (epoch-aligned); on a
store shared by replicas (PostgreSQL) they are counted in the store, so N replicas together admit
``requests`` per period, not N times as many.
"""

from __future__ import annotations

import fnmatch
import hmac
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dsl import parse_duration
from runtime.context import HttpRequest, HttpResponse
from runtime.errors import ConfigurationError
from runtime.redaction import register_secret
from runtime.server.ratewindows import LocalWindows, StoreWindows, Windows
from runtime.store.base import ObjectStore

__all__ = ["Policy", "PolicyConfigError", "build_policies", "check_policies"]

EXEMPT = frozenset({"/health", "/ready"})


class PolicyConfigError(ConfigurationError):
    """``settings.server.policies`` is not understood."""


@dataclass
class Policy:
    """Base: which paths it guards."""

    paths: Sequence[str] = ("/*",)
    exclude: Sequence[str] = ()

    def applies(self, path: str) -> bool:
        """Whether this policy guards ``path``."""
        if path in EXEMPT:
            return False
        if any(fnmatch.fnmatchcase(path, pattern) for pattern in self.exclude):
            return False
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.paths)

    async def check(self, request: HttpRequest, verified: str | None) -> HttpResponse | None:
        """``None`` to let the request through, else the refusal. ``verified`` is the client id a
        ``client-id`` policy before this one checked, if any."""
        raise NotImplementedError


def _refuse(status: int, kind: str, message: str, headers: dict[str, str] | None = None
            ) -> HttpResponse:
    return HttpResponse(status, {"error": {"type": f"POLICY:{kind}", "message": message}},
                        headers or {})


def _client_of(request: HttpRequest) -> str | None:
    return request.headers.get("client_id") or request.headers.get("client-id")


@dataclass
class ClientIdPolicy(Policy):
    """Only known clients with the right secret get through (constant-time comparison)."""

    clients: Mapping[str, str] = field(default_factory=dict)

    async def check(self, request: HttpRequest, verified: str | None) -> HttpResponse | None:
        client = _client_of(request)
        secret = request.headers.get("client_secret") or request.headers.get("client-secret") or ""
        expected = self.clients.get(client or "")
        if client is None or not expected or not secret or not hmac.compare_digest(
                secret.encode(), str(expected).encode()):
            return _refuse(401, "UNAUTHORIZED", "a valid client_id and client_secret are required")
        return None


@dataclass
class ApiKeyPolicy(Policy):
    """A request must carry one of the configured keys in ``header``."""

    keys: Sequence[str] = ()
    header: str = "x-api-key"

    async def check(self, request: HttpRequest, verified: str | None) -> HttpResponse | None:
        given = request.headers.get(self.header.lower(), "")
        # An empty configured key (an unset property) must never admit a request without a key.
        if not given or not any(hmac.compare_digest(given.encode(), str(k).encode())
                                for k in self.keys if k):
            return _refuse(401, "UNAUTHORIZED", f"a valid {self.header} header is required")
        return None


@dataclass
class RateLimitPolicy(Policy):
    """At most ``requests`` per ``period`` seconds per verified client id (or remote address)."""

    requests: int = 100
    period: float = 60.0
    key: str = "client"
    windows: Windows = field(default_factory=LocalWindows)
    #: Tells this policy's counts apart from another's in a shared store.
    name: str = "rate-limit"

    async def check(self, request: HttpRequest, verified: str | None) -> HttpResponse | None:
        who = (f"client:{verified}" if self.key == "client" and verified
               else f"address:{request.client or '?'}")
        wait = await self.windows.take(f"{self.name}:{who}", self.requests, self.period)
        if wait is not None:
            return _refuse(429, "TOO_MANY_REQUESTS",
                           f"rate limit of {self.requests} requests per {self.period:g}s exceeded",
                           {"Retry-After": str(max(1, math.ceil(wait)))})
        return None


_KINDS: dict[str, type[Policy]] = {
    "client-id": ClientIdPolicy, "api-key": ApiKeyPolicy, "rate-limit": RateLimitPolicy,
}


def build_policies(config: Any, store: ObjectStore | None = None) -> list[Policy]:
    """Policies from ``settings.server.policies`` (a list of one-key mappings); rate limits count
    in ``store`` when it is shared by replicas, else in this process."""
    policies: list[Policy] = []
    for index, entry in enumerate(config or []):
        if not isinstance(entry, Mapping) or len(entry) != 1:
            raise PolicyConfigError(f"policy #{index + 1}: expected a mapping with one of "
                                    f"{', '.join(_KINDS)}")
        ((kind, options),) = entry.items()
        if kind not in _KINDS:
            raise PolicyConfigError(f"policy #{index + 1}: unknown policy '{kind}', expected one of "
                                    f"{', '.join(_KINDS)}")
        options = dict(options or {})
        common: dict[str, Any] = {"paths": tuple(options.pop("paths", ("/*",))),
                                  "exclude": tuple(options.pop("exclude", ()))}
        if kind == "client-id":
            clients = {str(k): str(v) for k, v in dict(options.pop("clients", {})).items()}
            for secret in clients.values():
                register_secret(secret)
            policy: Policy = ClientIdPolicy(clients=clients, **common)
        elif kind == "api-key":
            keys = [str(k) for k in options.pop("keys", [])]
            for key in keys:
                register_secret(key)
            policy = ApiKeyPolicy(keys=keys, header=str(options.pop("header", "x-api-key")), **common)
        else:
            windows: Windows = (StoreWindows(store) if store is not None and store.serves_replicas
                                else LocalWindows())
            policy = RateLimitPolicy(requests=int(options.pop("requests", 100)),
                                     period=parse_duration(options.pop("period", 60)),
                                     key=str(options.pop("key", "client")), windows=windows,
                                     name=f"policy-{index + 1}", **common)
        if options:
            raise PolicyConfigError(f"policy '{kind}': unknown option(s) {', '.join(options)}")
        policies.append(policy)
    return policies


async def check_policies(policies: Sequence[Policy], request: HttpRequest) -> HttpResponse | None:
    """The first refusal among the policies guarding the request's path, else ``None``."""
    verified: str | None = None
    for policy in policies:
        if policy.applies(request.path):
            refusal = await policy.check(request, verified)
            if refusal is not None:
                return refusal
            if isinstance(policy, ClientIdPolicy):
                verified = _client_of(request)
    return None

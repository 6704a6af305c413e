"""The table of HTTP routes that sources register (listeners, webhooks, experience APIs).

Sources call ``ctx.add_route`` while they start; the server's app looks requests up here, so routes
may be added after the server is already listening. It lives in the runtime, not in
:mod:`runtime.server`, so that the dependency goes one way: the server uses the runtime's table,
the runtime knows no server.

A route belongs to its flow's trigger, and answers only while that trigger runs: when the trigger
fails (and waits to be restarted) or stops, its routes stay in the table but answer 503 with a
``Retry-After`` (:meth:`RouteTable.suspend_owner`), so a sender that retries (QuickBooks and
Salesforce redeliver on any non-2xx) delivers again later rather than being told "accepted" by a
trigger that is not there. The restarted trigger registers its routes again and they replace the
suspended ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from dsl.routes import routes_conflict
from runtime.context import HttpEndpoint, HttpRequest, HttpResponse
from runtime.errors import ConfigurationError

__all__ = ["Route", "RouteConflictError", "RouteTable"]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: Seconds a sender is asked to wait before retrying a route whose trigger is not running.
RETRY_AFTER = 5


class RouteConflictError(ConfigurationError):
    """Two flows claim the same method and path."""


@dataclass(frozen=True, slots=True)
class Route:
    """One registered endpoint."""

    path: str
    methods: frozenset[str]
    endpoint: HttpEndpoint
    owner: str
    pattern: re.Pattern[str]


def _compile(path: str) -> re.Pattern[str]:
    parts = []
    last = 0
    for match in _PARAM.finditer(path):
        parts.append(re.escape(path[last:match.start()]))
        parts.append(f"(?P<{match.group(1)}>[^/]+)")
        last = match.end()
    parts.append(re.escape(path[last:]))
    return re.compile("^" + "".join(parts) + "/?$")


def _specificity(route: Route) -> tuple[int, ...]:
    """Literal segments before parameters, segment by segment: ``/orders/summary`` is tried before
    ``/orders/{id}``, whichever flow started first."""
    return tuple(1 if "{" in segment else 0 for segment in route.path.strip("/").split("/"))


class RouteTable:
    """Routes by path pattern, the most specific first (literal segments before parameters)."""

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._by_specificity: list[Route] = []

    def add(self, path: str, methods: frozenset[str] | set[str] | list[str], endpoint: HttpEndpoint,
            *, owner: str) -> None:
        """Register ``endpoint``; a method and path that an earlier route already answers (the same
        template, whatever its parameters are named: :func:`dsl.routes.routes_conflict`, the rule
        ``splice validate`` applies too) is a conflict naming both owners."""
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        wanted = frozenset(m.upper() for m in methods)
        for route in self._routes:
            both = routes_conflict(route.path, route.methods, path, wanted)
            if both and route.owner != owner:
                same = path if route.path == path else f"{path} (as {route.path})"
                raise RouteConflictError(f"{both} {same} is claimed by both '{route.owner}' and '{owner}'")
        # The owner's own earlier registration (a previous start of its trigger) is replaced.
        kept = [r for r in self._routes
                if not (r.owner == owner and r.path == path and r.methods & wanted)]
        self._routes = [*kept, Route(path, wanted, endpoint, owner, _compile(path))]
        self._by_specificity = sorted(self._routes, key=_specificity)

    def suspend_owner(self, owner: str, reason: str) -> None:
        """The trigger of flow ``owner`` is not running: its routes answer 503 until it registers
        them again. ``reason`` says why in the answer (no error details: they are the server's)."""
        unavailable = _unavailable(owner, reason)
        self._routes = [replace(r, endpoint=unavailable) if r.owner == owner else r
                        for r in self._routes]
        self._by_specificity = sorted(self._routes, key=_specificity)

    def remove_owner(self, owner: str) -> None:
        """Drop the routes of a flow that stopped."""
        self._routes = [r for r in self._routes if r.owner != owner]
        self._by_specificity = sorted(self._routes, key=_specificity)

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """``(route, path params, path exists)``; ``path exists`` tells 405 from 404."""
        exists = False
        for route in self._by_specificity:
            found = route.pattern.match(path)
            if found is None:
                continue
            exists = True
            if method.upper() in route.methods:
                return route, found.groupdict(), True
        return None, {}, exists

    def __iter__(self) -> Iterator[Route]:
        return iter(list(self._routes))


def _unavailable(owner: str, reason: str) -> HttpEndpoint:
    async def endpoint(request: HttpRequest) -> HttpResponse:
        return HttpResponse(503, {"error": {
            "type": "SERVER:TRIGGER_NOT_RUNNING",
            "message": f"the trigger of flow '{owner}' {reason}; try again later",
            "retryable": True}}, headers={"retry-after": str(RETRY_AFTER)})

    return endpoint

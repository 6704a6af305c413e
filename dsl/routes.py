"""When two HTTP routes are one: the rule ``splice validate`` and the server's route table share.

A route is a method (or ``*``, every method) and a path template (``/api/customers/{accountId}``).
The router matches a request against each template with an optional trailing ``/``, so two routes
conflict when their methods overlap and their templates match the same requests: the same text up
to a trailing ``/``, whatever their parameters are named (``/orders/{id}`` and ``/orders/{orderId}/``
are one route, and the second would never be reached). A literal path and a template that
would match it (``/orders/summary``, ``/orders/{id}``) are two routes: the router tries the more
specific first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["ANY_METHOD", "route_shape", "routes_conflict"]

#: A route that answers every method (a trigger that does not say which it takes).
ANY_METHOD = "*"
_PARAM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def route_shape(path: str) -> str:
    """``path`` as the router sees it: parameters unnamed, no trailing ``/`` (``/a/{}``)."""
    shape = _PARAM.sub("{}", path)
    return shape.rstrip("/") or "/"


def routes_conflict(path: str, methods: Iterable[str], other_path: str, other_methods: Iterable[str]) -> list[str]:
    """The methods both routes claim on the same requests (sorted; empty when they do not conflict)."""
    if route_shape(path) != route_shape(other_path):
        return []
    mine = {m.upper() for m in methods}
    theirs = {m.upper() for m in other_methods}
    if ANY_METHOD in mine:
        return sorted(theirs)
    if ANY_METHOD in theirs:
        return sorted(mine)
    return sorted(mine & theirs)

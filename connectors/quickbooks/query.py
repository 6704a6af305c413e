"""The QuickBooks query language from the client side: quoting, ``:name`` binds and paging.

Values are never pasted into a query by string formatting: a name like ``O'Brien`` breaks the
parser (4000) or, worse, changes the query. :func:`render` replaces each ``:name`` outside string
literals with :func:`quote` of its bind: strings in single quotes with ``\\`` and ``'`` escaped by a
backslash, numbers as written, booleans as ``true``/``false``, lists as ``('a', 'b')`` for ``IN``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from connectors.quickbooks.errors import quickbooks_error

__all__ = ["page_query", "query_entity", "quote", "render"]

_TOKENS = re.compile(r"'(?:\\.|[^'\\])*'|(?<![\w:]):([A-Za-z_][\w-]*)")
_ENTITY = re.compile(r"\bfrom\s+([A-Za-z]+)", re.IGNORECASE)
_PAGING = re.compile(r"\s+(startposition|maxresults)\s+\d+", re.IGNORECASE)
_COUNT = re.compile(r"^\s*select\s+count\s*\(\s*\*\s*\)", re.IGNORECASE)


def quote(value: Any) -> str:
    """One literal of the query language."""
    if value is None:
        raise quickbooks_error("INVALID_QUERY", "a query bind is null; QuickBooks has no NULL literal")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date):
        value = value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        if not value:
            raise quickbooks_error("INVALID_QUERY", "an IN list bind is empty")
        return "(" + ", ".join(quote(v) for v in value) + ")"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def render(query: str, binds: Mapping[str, Any] | None = None) -> str:
    """``query`` with each ``:name`` (outside quotes) replaced by the quoted bind value."""
    binds = binds or {}
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in binds:
            missing.append(name)
            return match.group(0)
        return quote(binds[name])

    out = _TOKENS.sub(replace, query)
    if missing:
        raise quickbooks_error("INVALID_QUERY", "query binds missing: " + ", ".join(sorted(set(missing))))
    return out


def query_entity(query: str) -> str:
    """The entity a select reads (the key of its rows in ``QueryResponse``)."""
    found = _ENTITY.search(_strip_literals(query))
    if not found:
        raise quickbooks_error("INVALID_QUERY", "a query must read FROM one entity")
    return found.group(1)


def is_count(query: str) -> bool:
    """Whether the query is ``select count(*) ...`` (answered by ``totalCount`` only)."""
    return bool(_COUNT.match(query))


def _strip_literals(query: str) -> str:
    return re.sub(r"'(?:\\.|[^'\\])*'", "''", query)


def page_query(query: str, start: int, size: int) -> str:
    """The query with its own STARTPOSITION/MAXRESULTS replaced by this page's."""
    literals: list[str] = []

    def keep(match: re.Match[str]) -> str:
        literals.append(match.group(0))
        return f"'{len(literals) - 1}'"

    masked = re.sub(r"'(?:\\.|[^'\\])*'", keep, query)
    masked = _PAGING.sub("", masked).rstrip().rstrip(";")
    restored = re.sub(r"'(\d+)'", lambda m: literals[int(m.group(1))], masked)
    return f"{restored} STARTPOSITION {start} MAXRESULTS {size}"

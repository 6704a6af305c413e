"""SOQL bind values: turning payload values into literals that cannot change the query.

A flow writes ``SELECT Id FROM Account WHERE Name = :name AND CreatedDate > :since`` and passes
``binds: {name: "#[payload.name]", since: {datetime: "#[vars.since]"}}``. Each ``:name`` outside a
string literal is replaced by :func:`quote` of its value, chosen by the value's type:

============================  ==========================================
value                         SOQL literal
============================  ==========================================
string                        ``'...'`` with ``\\ ' " \\n \\r \\t \\b \\f`` escaped
int / float / Decimal         the number (NaN and infinities are refused)
bool / None                   ``true`` / ``false`` / ``null``
``datetime`` / ``{datetime}``  ``2026-03-31T17:04:11Z`` (converted to UTC)
``date`` / ``{date}``         ``2026-03-31``
list / tuple / set            ``('a', 'b')`` for ``IN`` (never empty)
============================  ==========================================

A string is always a quoted string, even when it looks like a date: date and datetime literals are
asked for explicitly (``{date: ...}`` / ``{datetime: ...}``) and validated strictly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from connectors.salesforce.errors import SalesforceError

__all__ = ["bind", "format_datetime", "parse_datetime", "quote", "quote_string"]

_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\b": "\\b", "\f": "\\f"}
_ESCAPE_RE = re.compile("|".join(re.escape(c) for c in _ESCAPES))
_BIND_RE = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _bind_error(message: str, name: str | None = None) -> SalesforceError:
    return SalesforceError(message, error_type="SALESFORCE:INVALID_BIND",
                           details={"bind": name} if name else None)


def quote_string(value: str) -> str:
    """A SOQL string literal for ``value``."""
    return "'" + _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], value) + "'"


def parse_datetime(value: str) -> datetime:
    """Parse a Salesforce (``...000+0000``) or ISO 8601 datetime; naive values are taken as UTC."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_datetime(value: datetime) -> str:
    """The SOQL literal form (UTC, ``Z``), milliseconds kept when present."""
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def quote(value: Any, name: str | None = None) -> str:
    """The SOQL literal for one bind value (see the module table)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        if isinstance(value, float) and not math.isfinite(value) or (
                isinstance(value, Decimal) and not value.is_finite()):
            raise _bind_error(f"bind {name}: {value} is not a finite number", name)
        return format(value, "f") if isinstance(value, Decimal) else repr(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, raw),) = value.items()
        try:
            if kind == "datetime":
                return format_datetime(raw if isinstance(raw, datetime) else parse_datetime(str(raw)))
            if kind == "date":
                text = raw.isoformat() if isinstance(raw, date) else str(raw)
                if not _DATE_RE.match(text):
                    raise ValueError(text)
                return date.fromisoformat(text).isoformat()
        except ValueError:
            raise _bind_error(f"bind {name}: {raw!r} is not a valid {kind}", name) from None
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        if not items:
            raise _bind_error(f"bind {name}: an empty list cannot be used with IN", name)
        return "(" + ", ".join(quote(item, name) for item in items) + ")"
    raise _bind_error(f"bind {name}: cannot use a {type(value).__name__} in SOQL", name)


def bind(query: str, binds: Mapping[str, Any] | None) -> str:
    """``query`` with every ``:name`` outside string literals replaced by its quoted bind value."""
    if not binds:
        binds = {}
    out: list[str] = []
    i, n = 0, len(query)
    used: set[str] = set()
    while i < n:
        ch = query[i]
        if ch == "'":
            j = i + 1
            while j < n and query[j] != "'":
                j += 2 if query[j] == "\\" else 1
            out.append(query[i:j + 1])
            i = j + 1
            continue
        if ch == ":":
            match = _BIND_RE.match(query, i)
            if match:
                name = match.group(1)
                if name not in binds:
                    raise _bind_error(f"no value bound for :{name}", name)
                used.add(name)
                out.append(quote(binds[name], name))
                i = match.end()
                continue
        out.append(ch)
        i += 1
    return "".join(out)

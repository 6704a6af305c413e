"""JSON output for payloads that may hold Decimals, dates and streamed records."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["dumps", "dumps_bytes", "loads"]

_orjson: Any
try:  # the fast extra: several times quicker on the hot path of listener flows
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    _orjson = None


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        # Shortest float repr of a cent amount is the amount itself ("123.45").
        return int(obj) if obj == obj.to_integral_value() and abs(obj) < 2**53 else float(obj)
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON text (UTF-8 characters kept as they are)."""
    return json.dumps(value, default=_default, ensure_ascii=False, indent=indent)


def dumps_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON (orjson when installed)."""
    if _orjson is not None:
        data: bytes = _orjson.dumps(value, default=_default, option=_orjson.OPT_NON_STR_KEYS)
        return data
    return json.dumps(value, default=_default, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


#: JSON nested deeper than this is refused by :func:`loads`: what Splice reads may be written again
#: (orjson writes at most 254 levels) and walked by expressions without exhausting the stack.
MAX_DEPTH = 128


def loads(data: bytes | str) -> Any:
    """Parse JSON (orjson when installed).

    Raises:
        ValueError: not JSON, or nested deeper than :data:`MAX_DEPTH` levels.
    """
    try:
        value = _orjson.loads(data) if _orjson is not None else json.loads(data)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    # Counting brackets is cheap; only a text with enough of them can be too deep to walk.
    if isinstance(value, list | dict) and _openings(data) > MAX_DEPTH:
        _check_depth(value)
    return value


def _openings(data: bytes | str) -> int:
    if isinstance(data, str):
        return data.count("[") + data.count("{")
    return bytes(data).count(b"[") + bytes(data).count(b"{")


def _check_depth(value: Any) -> None:
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node
        pending.extend((child, depth + 1) for child in children if isinstance(child, list | dict))

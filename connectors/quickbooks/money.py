"""Money stays ``Decimal`` from the wire to the wire.

QuickBooks checks every sales line: when ``Qty`` and ``UnitPrice`` are both given, ``Amount`` must be
their product rounded half up to cents, or the write fails with 6070. Binary floats get that wrong
(128.350 x 14.50 = 1861.075 becomes 1861.07), so responses are parsed with ``parse_float=Decimal``
and requests are written by :func:`dumps`, which prints a Decimal's exact digits as a JSON number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

__all__ = ["CENT", "dumps", "fill_line_amounts", "line_amount", "loads", "to_decimal"]

CENT = Decimal("0.01")


def to_decimal(value: Any) -> Decimal:
    """A Decimal from a JSON number, a numeric string or a float (through its shortest repr)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def line_amount(qty: Any, unit_price: Any) -> Decimal:
    """``Qty x UnitPrice`` rounded half up to cents, the way QuickBooks validates a line."""
    return (to_decimal(qty) * to_decimal(unit_price)).quantize(CENT, rounding=ROUND_HALF_UP)


def fill_line_amounts(record: dict[str, Any]) -> dict[str, Any]:
    """Set ``Amount`` of every sales line that has both ``Qty`` and ``UnitPrice`` (in place)."""
    lines = record.get("Line")
    if not isinstance(lines, list):
        return record
    for line in lines:
        if not isinstance(line, dict):
            continue
        detail = line.get("SalesItemLineDetail")
        if not isinstance(detail, Mapping):
            continue
        qty, price = detail.get("Qty"), detail.get("UnitPrice")
        if qty is None or price is None or qty == "" or price == "":
            continue
        line["Amount"] = line_amount(qty, price)
    return record


def loads(body: bytes | str) -> Any:
    """Parse a JSON body with every non-integer number as a Decimal."""
    return json.loads(body, parse_float=Decimal)


def _number(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"cannot send {value} as an amount")
    text = format(value, "f")
    return text


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        out.append(_number(value))
    elif isinstance(value, float):
        out.append(_number(Decimal(repr(value))))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        out.append(json.dumps(value, ensure_ascii=False))


def dumps(value: Any) -> bytes:
    """JSON bytes where Decimals (and floats) are written with their exact decimal digits."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")

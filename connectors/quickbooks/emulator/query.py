"""The emulator's query engine: ``query.lark`` parsed with lark, evaluated over a company's rows.

Parse errors answer like QuickBooks (4000 ``QueryParserError: Encountered ...``), name lists hide
inactive rows unless the query filters on ``Active``, string comparisons ignore case, timestamps are
compared as instants whatever their offsets, and ``STARTPOSITION`` is 1-based with ``MAXRESULTS``
defaulting to 100 and capped at 1000.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cmp_to_key
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedInput

from connectors.quickbooks.emulator.entities import NAME_LISTS, PACIFIC, Company
from connectors.quickbooks.emulator.faults import Fault

__all__ = ["Query", "parse_query", "run_query"]

_PARSER = Lark((Path(__file__).parent / "query.lark").read_text(), parser="lalr",
               propagate_positions=True)


@dataclass
class Query:
    """A parsed select."""

    entity: str
    count: bool = False
    conditions: list[tuple[str, str, Any]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    start: int = 1
    max_results: int = 100


class _Build(Transformer[Token, Any]):
    def start(self, items: list[Any]) -> Query:
        selection, entity, *rest = items
        query = Query(entity=str(entity), count=selection == "count")
        for kind, value in rest:
            if kind == "where":
                query.conditions = value
            elif kind == "order":
                query.order = value
            elif kind == "start":
                query.start = max(1, value)
            elif kind == "max":
                query.max_results = min(max(value, 0), 1000)
        return query

    def star(self, _items: list[Any]) -> str:
        return "star"

    def count(self, _items: list[Any]) -> str:
        return "count"

    def where(self, items: list[Any]) -> tuple[str, Any]:
        return ("where", items)

    def compare(self, items: list[Any]) -> tuple[str, str, Any]:
        return (str(items[0]), str(items[1]), items[2])

    def in_list(self, items: list[Any]) -> tuple[str, str, Any]:
        return (str(items[0]), "in", items[1:])

    def like(self, items: list[Any]) -> tuple[str, str, Any]:
        return (str(items[0]), "like", _unquote(str(items[1])))

    def orderby(self, items: list[Any]) -> tuple[str, Any]:
        return ("order", items)

    def order_item(self, items: list[Any]) -> tuple[str, bool]:
        return (str(items[0]), len(items) > 1 and str(items[1]).lower() == "desc")

    def startposition(self, items: list[Any]) -> tuple[str, int]:
        return ("start", int(items[0]))

    def maxresults(self, items: list[Any]) -> tuple[str, int]:
        return ("max", int(items[0]))

    def string(self, items: list[Any]) -> str:
        return _unquote(str(items[0]))

    def number(self, items: list[Any]) -> Decimal:
        return Decimal(str(items[0]))

    def true(self, _items: list[Any]) -> bool:
        return True

    def false(self, _items: list[Any]) -> bool:
        return False


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def parse_query(text: str) -> Query:
    """A :class:`Query`, or the 4000 fault QuickBooks answers for a malformed one."""
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        token = getattr(exc, "token", None) or getattr(exc, "char", None) or "<EOF>"
        raise Fault("4000", "Error parsing query",
                    f'QueryParserError: Encountered "{token}" at line {exc.line}, column '
                    f"{exc.column}.") from None
    query: Query = _Build().transform(tree)
    return query


def _value(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    return value


_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def _instant(text: str) -> datetime | None:
    if not _DATETIME.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=PACIFIC)


def _cmp(left: Any, right: Any) -> int | None:
    """-1/0/1 comparing a field value with a literal, ``None`` when they cannot be compared."""
    if left is None:
        return None
    if isinstance(right, bool) or isinstance(left, bool):
        return 0 if str(left).lower() == str(right).lower() else None
    if isinstance(right, Decimal):
        try:
            number = Decimal(str(left))
        except InvalidOperation:
            return None
        return (number > right) - (number < right)
    a, b = _instant(str(left)), _instant(str(right))
    if a is not None and b is not None:
        return (a > b) - (a < b)
    x, y = str(left).lower(), str(right).lower()
    return (x > y) - (x < y)


def _matches(record: dict[str, Any], condition: tuple[str, str, Any]) -> bool:
    path, op, literal = condition
    value = _value(record, path)
    if op == "in":
        return any(_cmp(value, item) == 0 for item in literal)
    if op == "like":
        pattern = "".join(".*" if ch == "%" else re.escape(ch) for ch in literal)
        return value is not None and re.fullmatch(pattern, str(value), re.IGNORECASE) is not None
    result = _cmp(value, literal)
    if result is None:
        return False
    return {"=": result == 0, "!=": result != 0, "<": result < 0, ">": result > 0,
            "<=": result <= 0, ">=": result >= 0}[op]


def run_query(company: Company, text: str) -> dict[str, Any]:
    """The ``QueryResponse`` object for a query against one company."""
    query = parse_query(text)
    if query.entity not in company.tables:
        raise Fault("4001", "Invalid query", f"QueryValidationError: Invalid entity {query.entity}")
    rows = list(company.tables[query.entity].values())
    if query.entity in NAME_LISTS and not any(c[0] == "Active" for c in query.conditions):
        rows = [r for r in rows if r.get("Active", True) is not False]
    rows = [r for r in rows if all(_matches(r, c) for c in query.conditions)]
    if query.count:
        return {"totalCount": len(rows)}

    def order(a: dict[str, Any], b: dict[str, Any]) -> int:
        for path, desc in query.order or [("Id", False)]:
            left, right = _value(a, path), _value(b, path)
            if path == "Id" or (str(left).isdigit() and str(right).isdigit()):
                left, right = Decimal(str(left)), Decimal(str(right))
            result = _cmp(left, right) or 0
            if result:
                return -result if desc else result
        return 0

    rows.sort(key=cmp_to_key(order))
    page = rows[query.start - 1:query.start - 1 + query.max_results]
    if not page:
        return {}
    return {query.entity: [copy.deepcopy(r) for r in page], "startPosition": query.start,
            "maxResults": len(page)}

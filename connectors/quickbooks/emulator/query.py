"""The emulator's query engine: ``query.lark`` parsed with lark, evaluated over a company's rows.

Parse errors answer like QuickBooks (4000 ``QueryParserError: Encountered ...``), name lists hide
inactive rows unless the query filters on ``Active``, string comparisons ignore case, timestamps are
compared as instants whatever their offsets, and ``STARTPOSITION`` is 1-based with ``MAXRESULTS``
defaulting to 100 and capped at 1000. A text ``=`` / ``IN`` condition is answered from the table's
index (:mod:`.table`) rather than by scanning, and the next page of a query over an unchanged table
reuses the rows the previous page selected; the answers are the same as a scan's.
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
from connectors.quickbooks.emulator.table import Table
from connectors.quickbooks.emulator.table import field_value as _value
from connectors.quickbooks.emulator.validation import check_filters

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


def _index_keys(condition: tuple[str, str, Any]) -> list[str] | None:
    """The index keys a row must have one of to meet an ``=`` or ``IN`` condition on text, or
    ``None`` when the condition cannot be answered from an index (other operators; a number,
    boolean or timestamp literal, which compare by value rather than as text)."""
    _path, op, literal = condition
    items = [literal] if op == "=" else literal if op == "in" else None
    if items is None:
        return None
    keys = []
    for item in items:
        if not isinstance(item, str) or _instant(item) is not None:
            return None
        keys.append(item.lower())
    return keys


def _candidates(table: dict[str, dict[str, Any]],
                conditions: list[tuple[str, str, Any]]) -> list[dict[str, Any]]:
    """The rows that may meet the conditions, in table order: through the table's index for the
    first text ``=`` / ``IN`` condition, else all of them (every condition is checked after)."""
    if isinstance(table, Table):
        for condition in conditions:
            keys = _index_keys(condition)
            if keys is not None:
                return table.lookup(condition[0], keys)
    return list(table.values())


def _sort_by_id(rows: list[dict[str, Any]], order: list[tuple[str, bool]]) -> bool:
    """Sort by numeric Id (the default order) with a key instead of the general comparison, which
    orders the same; ``False`` (rows untouched) when an Id is not a plain number."""
    if order not in ([], [("Id", False)]):
        return False
    try:
        keys = [Decimal(str(_value(r, "Id"))) for r in rows]
    except InvalidOperation:
        return False
    if any(not k.is_finite() for k in keys):
        return False
    ordered = sorted(range(len(rows)), key=keys.__getitem__)
    rows[:] = [rows[i] for i in ordered]
    return True


def _matching(table: dict[str, dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    """The rows meeting the query's conditions, in table order."""
    rows = _candidates(table, query.conditions)
    if query.entity in NAME_LISTS and not any(c[0] == "Active" for c in query.conditions):
        rows = [r for r in rows if r.get("Active", True) is not False]
    return [r for r in rows if all(_matches(r, c) for c in query.conditions)]


def _sorted(rows: list[dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    def order(a: dict[str, Any], b: dict[str, Any]) -> int:
        for path, desc in query.order or [("Id", False)]:
            left, right = _value(a, path), _value(b, path)
            if str(left).isdigit() and str(right).isdigit():  # Ids too: "TAX" and "NON" exist
                left, right = Decimal(str(left)), Decimal(str(right))
            result = _cmp(left, right) or 0
            if result:
                return -result if desc else result
        return 0

    if not _sort_by_id(rows, query.order):
        rows.sort(key=cmp_to_key(order))
    return rows


def _selection_key(query: Query) -> Any:
    """What a query's selection depends on besides the rows (literals tagged with their type:
    ``true``, ``1`` and ``'1'`` compare differently)."""
    def literal(value: Any) -> Any:
        return (type(value).__name__, value)

    return (query.entity, tuple((path, op, tuple(literal(v) for v in value) if op == "in"
                                 else literal(value)) for path, op, value in query.conditions),
            tuple(query.order))


def _selected(table: dict[str, dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    """The matching rows in the query's order. A later page (STARTPOSITION above 1) of a query
    reuses the rows its earlier page selected while the table has not changed since, so paging
    through a large table costs one selection instead of one per page."""
    if not isinstance(table, Table):
        return _sorted(_matching(table, query), query)
    key = _selection_key(query)
    kept = table.selections.get(key)
    if query.start > 1 and kept is not None and kept[0] == table.version:
        return kept[1]
    rows = _sorted(_matching(table, query), query)
    table.keep_selection(key, rows)
    return rows


def run_query(company: Company, text: str) -> dict[str, Any]:
    """The ``QueryResponse`` object for a query against one company."""
    query = parse_query(text)
    if query.entity not in company.tables:
        raise Fault("4001", "Invalid query", f"QueryValidationError: Invalid entity {query.entity}")
    check_filters(query.entity, [path for path, _op, _value in query.conditions])
    table = company.tables[query.entity]
    if query.count:
        return {"totalCount": len(_matching(table, query))}
    rows = _selected(table, query)
    page = rows[query.start - 1:query.start - 1 + query.max_results]
    if not page:
        return {}
    return {query.entity: [copy.deepcopy(r) for r in page], "startPosition": query.start,
            "maxResults": len(page)}

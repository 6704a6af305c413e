"""SOQL for the emulator: a lark grammar (``soql.lark``), a transformer to a small query model, and
an evaluator over :class:`~connectors.salesforce.emulator.store.Org` records.

Supported: field lists with parent relationship paths (``Account.Owner.Name``), child subqueries
(``(SELECT ... FROM OpportunityLineItems)``), ``COUNT()``, ``WHERE`` with AND/OR/NOT, comparisons,
``IN``/``NOT IN``, ``LIKE``, ``NULL``, booleans, numbers, date and datetime literals (also TODAY,
YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n), ``ORDER BY`` (ASC/DESC, NULLS FIRST/LAST),
``LIMIT`` and ``OFFSET``. Names are case-insensitive; answers use the canonical names.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedInput, v_args

from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.ids import parse_any_datetime

__all__ = ["Cond", "Literal", "Query", "parse"]

_PARSER = Lark((Path(__file__).parent / "soql.lark").read_text(), parser="lalr",
               propagate_positions=True)


@dataclass(frozen=True, slots=True)
class Literal:
    kind: str  # string number datetime date relative null bool
    value: Any


@dataclass(frozen=True, slots=True)
class Cond:
    op: str  # and or not compare like in not_in
    args: tuple[Any, ...]


@dataclass(slots=True)
class Query:
    """One parsed (sub)query."""

    fields: list[Any]
    source: str
    where: Cond | None = None
    order: list[tuple[tuple[str, ...], bool, bool]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    count: bool = False


def _only_query(items: list[Any]) -> Query:
    """The one child of a rule whose child is a query (already built, the tree is built bottom up)."""
    query = items[0]
    if not isinstance(query, Query):
        raise TypeError(f"expected a built query, got {type(query).__name__}")
    return query


class _Build(Transformer[Token, Query]):
    def start(self, items: list[Any]) -> Query:
        return _only_query(items)

    def query(self, items: list[Any]) -> Query:
        fields, source, *clauses = items
        q = Query(fields=[f for f in fields if f != "COUNT"], source=str(source),
                  count="COUNT" in fields)
        for kind, value in clauses:
            if kind == "where":
                q.where = value
            elif kind == "order":
                q.order = value
            elif kind == "limit":
                q.limit = value
            else:
                q.offset = value
        return q

    def select_list(self, items: list[Any]) -> list[Any]:
        return items

    def field_path(self, items: list[Any]) -> tuple[str, ...]:
        return tuple(str(i) for i in items)

    def subquery(self, items: list[Any]) -> Query:
        return _only_query(items)

    def count_all(self, _items: list[Any]) -> str:
        return "COUNT"

    def where_clause(self, items: list[Any]) -> tuple[str, Cond]:
        return ("where", items[0])

    def or_(self, items: list[Any]) -> Cond:
        return Cond("or", tuple(items))

    def and_(self, items: list[Any]) -> Cond:
        return Cond("and", tuple(items))

    def not_(self, items: list[Any]) -> Cond:
        return Cond("not", tuple(items))

    def compare(self, items: list[Any]) -> Cond:
        op = "!=" if str(items[1]) == "<>" else str(items[1])
        return Cond("compare", (items[0], op, items[2]))

    def like(self, items: list[Any]) -> Cond:
        return Cond("like", (items[0], items[1]))

    def in_(self, items: list[Any]) -> Cond:
        return Cond("in", (items[0], tuple(items[1])))

    def not_in(self, items: list[Any]) -> Cond:
        return Cond("not_in", (items[0], tuple(items[1])))

    def value_list(self, items: list[Any]) -> list[Any]:
        return items

    @v_args(inline=True)
    def string(self, token: Any) -> Literal:
        raw = str(token)[1:-1]
        unescaped = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t", "b": "\b",
                                                 "f": "\f"}.get(m.group(1), m.group(1)), raw)
        return Literal("string", unescaped)

    @v_args(inline=True)
    def number(self, token: Any) -> Literal:
        return Literal("number", float(token))

    @v_args(inline=True)
    def datetime(self, token: Any) -> Literal:
        return Literal("datetime", parse_any_datetime(str(token)))

    @v_args(inline=True)
    def date(self, token: Any) -> Literal:
        return Literal("date", date.fromisoformat(str(token)))

    @v_args(inline=True)
    def relative_date(self, token: Any) -> Literal:
        return Literal("relative", str(token).upper())

    def null(self, _items: list[Any]) -> Literal:
        return Literal("null", None)

    def true(self, _items: list[Any]) -> Literal:
        return Literal("bool", True)

    def false(self, _items: list[Any]) -> Literal:
        return Literal("bool", False)

    def order_clause(self, items: list[Any]) -> tuple[str, list[Any]]:
        return ("order", items)

    def order_item(self, items: list[Any]) -> tuple[tuple[str, ...], bool, bool]:
        path, desc, nulls_first = items[0], False, None
        for token in items[1:]:
            text = str(token).upper()
            if text in ("ASC", "DESC"):
                desc = text == "DESC"
            else:
                nulls_first = text.endswith("FIRST")
        return (path, desc, (not desc) if nulls_first is None else nulls_first)

    def limit_clause(self, items: list[Any]) -> tuple[str, int]:
        return ("limit", int(items[0]))

    def offset_clause(self, items: list[Any]) -> tuple[str, int]:
        return ("offset", int(items[0]))


@functools.lru_cache(maxsize=512)
def parse(text: str) -> Query:
    """Parse SOQL, or raise 400 MALFORMED_QUERY with Salesforce's row/column message."""
    try:
        return _Build().transform(_PARSER.parse(text))
    except UnexpectedInput as exc:
        token = getattr(exc, "token", None)
        shown = f"unexpected token: '{token}'" if token is not None else "unexpected end of query"
        raise ApiError(400, "MALFORMED_QUERY",
                       f"\n{text}\n{' ' * max(0, exc.column - 1)}^\nERROR at Row:{exc.line}:"
                       f"Column:{exc.column}\n{shown}") from None

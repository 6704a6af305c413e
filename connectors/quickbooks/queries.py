"""``quickbooks.query``, and its batch form: the same lookup for many values in one query.

Flows look reference data up one value at a time (``select * from Invoice where DocNumber =
:doc``, ``select * from Customer where DisplayName = :name``). When a flow batches such a step,
calls whose query text is the same, and whose binds differ only in one value used as
``Field = :bind`` (that bind used nowhere else; no ORDER BY, STARTPOSITION, MAXRESULTS, ``limit``
or ``stream``), become one ``Field IN (...)`` query, paged as needed, and each call gets back its
own rows: those whose field has its value. The split must give every call exactly what its single
query would: a row's value is compared exactly and ignoring case, and when the two disagree (the
server's comparison decides, and it is not known here) that call runs its own query; so does every
call when a row matches no value at all. Values that QuickBooks compares as something other than
text (numbers, booleans, dates) are never coalesced. Anything else runs call by call.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from connectors.quickbooks.gather import canonical, own_error, run_each
from connectors.quickbooks.query import is_count, query_entity, render
from connectors.quickbooks.steps import step_client
from runtime import BatchCall, BatchForm, OperationContext, SpliceError

__all__ = ["QUERY_BATCH", "coalescing_bind", "query", "query_batch", "query_key"]

_LITERAL = re.compile(r"'(?:\\.|[^'\\])*'")
_BIND = re.compile(r"(?<![\w:]):([A-Za-z_][\w-]*)")
_EQUALS_BIND = re.compile(r"\b([A-Za-z_][\w.]*)\s*=\s*:([A-Za-z_][\w-]*)")
_ORDER_OR_PAGE = re.compile(r"\b(order\s+by|orderby|startposition|maxresults)\b", re.IGNORECASE)
_DATE_LIKE = re.compile(r"^\s*\d{4}-\d{2}-\d{2}")


async def query(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """All rows of a select (paged), or the number for ``select count(*)``."""
    client = step_client(ctx)
    sql = render(str(params["query"]), params.get("binds") or {})
    if is_count(sql):
        return int((await client.query_page(sql)).get("totalCount", 0))
    query_entity(sql)
    rows = client.query(sql, limit=params.get("limit") or None, page_size=params["page-size"])
    if params.get("stream"):
        return rows  # pages are fetched as a foreach consumes them
    return [row async for row in rows]


def _masked(text: str) -> str:
    """``text`` with the inside of every string literal blanked (positions kept)."""
    return _LITERAL.sub(lambda m: "'" + " " * (len(m.group(0)) - 2) + "'", text)


def coalescing_bind(text: str) -> tuple[str, str, tuple[int, int]] | None:
    """The first ``Field = :bind`` whose bind is used nowhere else: field, bind and where it is;
    ``None`` when the query cannot be coalesced (a count, an order or a page of its own)."""
    masked = _masked(text)
    if is_count(text) or _ORDER_OR_PAGE.search(masked):
        return None
    used = [m.group(1) for m in _BIND.finditer(masked)]
    for match in _EQUALS_BIND.finditer(masked):
        if used.count(match.group(2)) == 1:
            return match.group(1), match.group(2), match.span()
    return None


def query_key(params: Mapping[str, Any]) -> Hashable:
    """Calls share a batch when their query text and every bind but the coalescing one agree."""
    text = str(params.get("query") or "")
    binds = dict(params.get("binds") or {})
    found = coalescing_bind(text)
    if found is not None:
        binds.pop(found[1], None)
    return canonical(["query", text, binds, params.get("limit"), bool(params.get("stream")),
                      params.get("page-size")])


def filter_value(row: Mapping[str, Any], path: str) -> Any:
    """A row's value of a filter field as QuickBooks compares it: a reference gives its
    ``value``, an e-mail address object its ``Address``."""
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    if isinstance(value, Mapping) and "value" in value:
        value = value["value"]
    elif isinstance(value, Mapping) and set(value) == {"Address"}:
        value = value["Address"]
    return value


def _coalescible(calls: Sequence[BatchCall]) -> tuple[str, str, tuple[int, int]] | None:
    text = str(calls[0].params["query"])
    found = coalescing_bind(text)
    if found is None:
        return None
    _field, name, _span = found
    for call in calls:
        binds = call.params.get("binds") or {}
        value = binds.get(name)
        if (call.params.get("limit") or call.params.get("stream") or str(call.params["query"]) != text
                or not isinstance(value, str) or _DATE_LIKE.match(value)):
            return None
        if query_key(call.params) != query_key(calls[0].params):
            return None
    return found


def _split(rows: list[dict[str, Any]], field: str,
           values: list[str]) -> tuple[dict[str, list[dict[str, Any]]], list[str]] | None:
    """Each value's rows, and the values the split cannot decide; ``None`` when a row belongs to
    no value (the server matched it some other way)."""
    exact: dict[str, list[dict[str, Any]]] = {v: [] for v in values}
    loose: dict[str, list[dict[str, Any]]] = {v: [] for v in values}
    folded: dict[str, list[str]] = {}
    for v in values:
        folded.setdefault(v.casefold(), []).append(v)
    for row in rows:
        value = filter_value(row, field)
        text = None if value is None else str(value)
        if text is None or text.casefold() not in folded:
            return None
        for v in folded[text.casefold()]:
            loose[v].append(row)
            if text == v:
                exact[v].append(row)
    undecided = [v for v in values if len(exact[v]) != len(loose[v])]
    return exact, undecided


async def query_batch(calls: Sequence[BatchCall]) -> list[Any]:
    """``quickbooks.query`` for many calls: one ``IN`` query when they differ in one value."""
    found = _coalescible(calls)
    if found is None:
        return await run_each(calls, lambda _i, call: query(call.ctx, call.params))
    field, name, (start, end) = found
    first = calls[0]
    values = list(dict.fromkeys(str((c.params.get("binds") or {})[name]) for c in calls))
    text = str(first.params["query"])
    if len(values) == 1:
        sql = render(text, first.params.get("binds") or {})
    else:
        sql = render(f"{text[:start]}{field} IN :{name}{text[end:]}",
                     {**(first.params.get("binds") or {}), name: values})
    client = step_client(first.ctx)
    try:
        rows = [row async for row in client.query(sql, page_size=first.params["page-size"])]
    except SpliceError as exc:
        if exc.error_type == "QUICKBOOKS:INVALID_QUERY" and len(values) > 1:
            return await run_each(calls, lambda _i, call: query(call.ctx, call.params))
        return [own_error(exc) for _ in calls]
    if len(values) == 1:  # the very query each call would send
        return [copy.deepcopy(rows) for _ in calls]
    split = _split(rows, field, values)
    if split is None:
        return await run_each(calls, lambda _i, call: query(call.ctx, call.params))
    by_value, undecided = split

    async def answer(_index: int, call: BatchCall) -> Any:
        value = str((call.params.get("binds") or {})[name])
        if value in undecided:
            return await query(call.ctx, call.params)
        return copy.deepcopy(by_value[value])

    first.ctx.annotate(coalesced=len(calls), values=len(values))
    return await run_each(calls, answer)


#: Lookups of one kind gathered into one query; 30 values keep the query short (it goes in the URL).
QUERY_BATCH = BatchForm(query_batch, max_size=30, key=query_key)


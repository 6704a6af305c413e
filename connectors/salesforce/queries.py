"""``salesforce.query``, alone and in its batch form: many executions' lookups in one SOQL query.

The batch form answers calls that run the same SOQL with the same binds but one, used as
``Field = :name`` (see :mod:`.soql_shape`), with one query ``Field IN (v1, v2, ...)`` per chunk of
values (every page followed), and hands each call exactly the rows its own query would have
returned: a row goes to the calls whose value its field holds. Which rows hold a value is decided
by a *loose key*, one that every value Salesforce would find equal shares: text case-folded and cut
to 15 characters (an Id's 15-character case-sensitive form names the same record as its 18-character
form; text fields compare without case), numbers as floats, dates as their ISO day. Calls whose
values share a loose key but differ go in separate queries, so a row never reaches a call whose own
query would have missed it, whatever the field's type.

Calls that cannot be merged (the query does not qualify; the value is null, a boolean, a list, a
datetime or not valid) and calls of a merged query that Salesforce refused run as their single
form, each with its own rows or error.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import AsyncIterable, AsyncIterator, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote as url_quote

import anyio

from connectors.salesforce.client import client_of
from connectors.salesforce.errors import SalesforceError
from connectors.salesforce.soql import bind, quote
from connectors.salesforce.soql_shape import InShape, in_shapes
from runtime import BatchCall, BatchForm, OperationContext, SpliceError

__all__ = ["QUERY_BATCH", "query", "query_key", "query_many"]

#: Calls merged at most into one batch (each value is one IN item).
MAX_CALLS = 200
#: Most characters of URL-encoded SOQL in one query's URL: well below the URI lengths Salesforce
#: accepts (about 16,000), and below SOQL's 100,000 characters.
MAX_ENCODED_SOQL = 10_000


async def _stream(records: AsyncIterable[dict[str, Any]] | Iterable[dict[str, Any]]
                  ) -> AsyncIterator[dict[str, Any]]:
    if isinstance(records, Iterable):
        for record in records:
            yield record
        return
    async for record in records:
        yield record


async def query(ctx: OperationContext, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Run SOQL and stream the records, following ``nextRecordsUrl`` to the end."""
    soql = bind(params["query"], params.get("binds"))
    stream = await client_of(ctx).query(soql, include_deleted=params["include-deleted"],
                                        batch_size=params.get("batch-size"))
    ctx.annotate(total_size=stream.total_size)
    return _stream(stream)


def _frozen(values: Mapping[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, default=str)


def query_key(params: Mapping[str, Any]) -> Hashable:
    """Which calls may share a batch: same SOQL and options and, when the query can be merged
    (see :mod:`.soql_shape`), the same values of the binds that cannot be."""
    soql = str(params.get("query"))
    options = (bool(params.get("include-deleted")), params.get("batch-size"))
    shapes = in_shapes(soql)
    if not shapes:
        return (soql, *options)
    merged = {shape.bind for shape in shapes}
    rest = {k: v for k, v in (params.get("binds") or {}).items() if k not in merged}
    return (soql, *options, _frozen(rest))


# -- loose keys ----------------------------------------------------------------------------------

def _kind(value: Any) -> str | None:
    """How a bind value compares (``None``: not merged). Booleans are not merged: two values at
    most, and ``IN`` is not for checkbox fields."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal) or isinstance(value, float) and math.isfinite(value):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping) and set(value) == {"date"}:
        return "date"
    return None


def _loose(kind: str, value: Any) -> Hashable | None:
    """The loose key of a bind value or a row's field value; ``None`` for a value no key holds."""
    if value is None:
        return None
    if kind == "text":
        return str(value).casefold()[:15]
    if kind == "number":
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    raw = value["date"] if isinstance(value, Mapping) else value
    return str(raw)[:10]


@dataclass(slots=True)
class _Group:
    """Calls with one bind literal: one IN item, the same rows."""

    value: Any
    literal: str
    key: Hashable
    positions: list[int] = field(default_factory=list)


def _rounds(groups: Sequence[_Group]) -> list[list[_Group]]:
    """Groups in queries where no loose key repeats (the n-th literal of a key goes to query n)."""
    rounds: list[list[_Group]] = []
    count: dict[Hashable, int] = {}
    for group in groups:
        number = count.get(group.key, 0)
        count[group.key] = number + 1
        while len(rounds) <= number:
            rounds.append([])
        rounds[number].append(group)
    return rounds


def _chunks(groups: Sequence[_Group], budget: int) -> list[list[_Group]]:
    """Groups cut so that each query's encoded IN list stays within ``budget`` characters."""
    chunks: list[list[_Group]] = [[]]
    used = 0
    for group in groups:
        cost = len(url_quote(group.literal + ", ", safe=""))
        if chunks[-1] and used + cost > budget:
            chunks.append([])
            used = 0
        chunks[-1].append(group)
        used += cost
    return chunks


def _field_name(row: Mapping[str, Any], field_name: str) -> str | None:
    wanted = field_name.casefold()
    return next((k for k in row if k.casefold() == wanted), None)


# -- the batch form ------------------------------------------------------------------------------

async def _alone(calls: Sequence[BatchCall], positions: Iterable[int], results: list[Any]) -> None:
    """Calls as their single form, side by side: each gets its stream, or its own error."""
    async def one(position: int) -> None:
        try:
            results[position] = await query(calls[position].ctx, calls[position].params)
        except SpliceError as error:
            results[position] = error

    async with anyio.create_task_group() as group:
        for position in positions:
            group.start_soon(one, position)


async def _merged(calls: Sequence[BatchCall], shape: InShape, kind: str, chunk: Sequence[_Group],
                  results: list[Any]) -> None:
    """One ``IN`` query for ``chunk``; its rows split among the chunk's calls."""
    first = calls[chunk[0].positions[0]].params
    binds = {**(first.get("binds") or {}), shape.bind: [g.value for g in chunk]}
    try:
        soql = bind(shape.rewrite(str(first["query"])), binds)
        stream = await client_of(calls[0].ctx).query(soql, include_deleted=first["include-deleted"],
                                                     batch_size=first.get("batch-size"))
        rows = [row async for row in stream]
        named = [(row, name) for row in rows if (name := _field_name(row, shape.field)) is not None]
        if len(named) != len(rows):
            raise SalesforceError(f"rows came back without {shape.field}", error_type="SALESFORCE:BAD_RESPONSE")
    except SalesforceError:
        # The merged query was refused (one value Salesforce will not take fails it for all), or
        # its rows cannot be told apart: each call asks alone and gets its own answer.
        await _alone(calls, [p for group in chunk for p in group.positions], results)
        return
    split: dict[Hashable, list[dict[str, Any]]] = {g.key: [] for g in chunk}
    for row, name in named:
        key = _loose(kind, row[name])
        if key in split:
            if not shape.selected:
                row = {k: v for k, v in row.items() if k != name}
            split[key].append(row)
    for group in chunk:
        own = split[group.key]
        for number, position in enumerate(group.positions):
            mine = own if number == 0 else copy.deepcopy(own)
            calls[position].ctx.annotate(total_size=len(mine))
            results[position] = _stream(mine)


def _literal(value: Any) -> tuple[str, str] | None:
    """``(kind, SOQL literal)`` of a bind value that can be merged, else ``None``."""
    kind = _kind(value)
    if kind is None:
        return None
    try:
        return kind, quote(value)
    except SalesforceError:
        return None


def _widest(calls: Sequence[BatchCall], shapes: Sequence[InShape]) -> InShape:
    """The way to merge that saves most: the bind with the most distinct values among the calls."""
    def distinct(shape: InShape) -> int:
        return len({_literal((c.params.get("binds") or {}).get(shape.bind)) for c in calls})
    return max(shapes, key=distinct)


async def _merge(calls: Sequence[BatchCall], positions: Sequence[int], shape: InShape,
                 results: list[Any]) -> list[int]:
    """Calls that differ only in ``shape``'s bind as ``IN`` queries; returns those to run alone."""
    groups: dict[tuple[str, str], _Group] = {}
    alone: list[int] = []
    for position in positions:
        value = (calls[position].params.get("binds") or {}).get(shape.bind)
        literal = _literal(value)
        if literal is None:
            alone.append(position)
            continue
        group = groups.setdefault(literal, _Group(value, literal[1], _loose(literal[0], value)))
        group.positions.append(position)
    budget = MAX_ENCODED_SOQL - len(url_quote(str(calls[positions[0]].params["query"]), safe=""))
    for kind in dict.fromkeys(k for k, _ in groups):
        for round_ in _rounds([g for (k, _), g in groups.items() if k == kind]):
            for chunk in _chunks(round_, budget):
                await _merged(calls, shape, kind, chunk, results)
    return alone


async def query_many(calls: Sequence[BatchCall]) -> list[Any]:
    """``salesforce.query`` of many executions: one ``Field IN (...)`` query per chunk of values
    where the query qualifies (see the module docstring), else one query per call."""
    results: list[Any] = [None] * len(calls)
    shapes = in_shapes(str(calls[0].params["query"]))
    alone: list[int] = [] if shapes else list(range(len(calls)))
    if shapes:
        shape = _widest(calls, shapes)
        # Calls that differ in another of the mergeable binds too are merged apart.
        apart: dict[str, list[int]] = {}
        for position, call in enumerate(calls):
            rest = {k: v for k, v in (call.params.get("binds") or {}).items() if k != shape.bind}
            apart.setdefault(_frozen(rest), []).append(position)
        for positions in apart.values():
            alone += await _merge(calls, positions, shape, results)
    await _alone(calls, alone, results)
    return results


#: Lookups of many executions that differ in one ``Field = :bind`` value: one query per chunk.
QUERY_BATCH = BatchForm(query_many, max_size=MAX_CALLS, key=query_key)

"""The batch form of ``quickbooks.match-or-create``: one decision per record, however many
executions ask for it at once, and the stored links of all of them read in one query.

Calls with the same idempotency key (else the same entity and external key) are one record: they
share one flight, so one lookup, at most one create and one claim decide for all of them, and each
gets that decision (its own copy). A call of that record with other parameters (the account was
edited between two events) decides after the first, as its single call would after the first had
finished. Different records decide concurrently, each exactly as its single call would. The
records the calls' stored links name (the ``link`` parameter and the link remembered for the
external key), which a single call reads with one GET each, are read for the whole batch with one
``select * from <Entity> where Id in (...)`` per entity; a link to a record that does not exist is
passed over as a read's NOT_FOUND would be.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import anyio

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.gather import canonical, own_error, previewed
from connectors.quickbooks.lookup import XREF_NAMESPACE, decide, match_or_create
from connectors.quickbooks.reads import read_many
from connectors.quickbooks.steps import step_client
from runtime import BatchCall, BatchForm, SpliceError

__all__ = ["MATCH_BATCH", "flight_key", "match_or_create_batch"]

Links = dict[str, dict[str, dict[str, Any] | None]]


def flight_key(params: Mapping[str, Any]) -> str | None:
    """Which record a call decides for: its idempotency key, else its entity and external key."""
    entity = str(params.get("entity") or "Customer")
    key = params.get("idempotency-key")
    if key not in (None, ""):
        return f"key:{entity}:{key}"
    external = params.get("external-key")
    if external not in (None, ""):
        return f"external:{entity}:{external}"
    return None


def _entity_key(params: Mapping[str, Any]) -> Hashable:
    return str(params.get("entity") or "Customer")


async def _linked_rows(calls: Sequence[BatchCall]) -> Links:
    """The records the calls' links name, per entity, read with one query per entity."""
    wanted: dict[str, set[str]] = {}
    clients = [call.ctx.connection for call in calls]
    if not all(isinstance(c, QuickBooksClient) for c in clients):
        return {}  # each call reads its own links (and fails on its own without a connection)
    for call in calls:
        client, params = step_client(call.ctx), call.params
        entity = str(params.get("entity") or "Customer")
        ids = wanted.setdefault(entity, set())
        if params.get("link") not in (None, ""):
            ids.add(str(params["link"]))
        external = params.get("external-key")
        if external not in (None, ""):
            known = await call.ctx.store.get(XREF_NAMESPACE, f"{client.realm_id}:{entity}:{external}")
            if known:
                ids.add(str(known["id"]))
    client = step_client(calls[0].ctx)
    links: Links = {}
    for entity, ids in wanted.items():
        if not ids:
            continue
        try:
            rows = await read_many(client, entity, ids)
        except SpliceError:
            continue  # each call reads its own links, as its single form does
        links[entity] = {record_id: rows.get(record_id) for record_id in ids}
    return links


async def _one(call: BatchCall, links: Links) -> dict[str, Any]:
    params = call.params
    matcher, decision = await decide(call.ctx, params,
                                     links.get(str(params.get("entity") or "Customer")))
    return decision.as_output(matcher.entity)


async def match_or_create_batch(calls: Sequence[BatchCall]) -> list[Any]:
    """``quickbooks.match-or-create`` for many calls: each call's decision, or its error."""
    if any(call.ctx.dry_run for call in calls):
        return await previewed(calls, match_or_create)
    links = await _linked_rows(calls)
    flights: dict[str, list[int]] = {}
    for index, call in enumerate(calls):
        flights.setdefault(flight_key(call.params) or f"call:{index}", []).append(index)
    results: list[Any] = [None] * len(calls)
    crashed: list[Exception] = []

    async def fly(indexes: list[int]) -> None:
        try:
            await decide_in_turn(indexes)
        except Exception as exc:  # noqa: BLE001 - re-raised below, outside the task group
            crashed.append(exc)

    async def decide_in_turn(indexes: list[int]) -> None:
        decided: dict[str, Any] = {}
        for index in indexes:
            call = calls[index]
            asked = canonical(call.params)
            if asked in decided:
                shared = decided[asked]
                results[index] = (own_error(shared) if isinstance(shared, SpliceError)
                                  else copy.deepcopy(shared))
                continue
            try:
                outcome: Any = await _one(call, links)
            except SpliceError as exc:
                outcome = exc
            decided[asked] = results[index] = outcome

    async with anyio.create_task_group() as tg:
        for indexes in flights.values():
            tg.start_soon(fly, indexes)
    if crashed:
        raise crashed[0]
    return results


#: Records of one entity decided together; a batch's links are read in one query.
MATCH_BATCH = BatchForm(match_or_create_batch, max_size=30, key=_entity_key)

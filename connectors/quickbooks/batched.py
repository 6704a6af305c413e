"""Batch forms of ``quickbooks.create`` and ``quickbooks.update``: the calls of many executions
go in ``POST /batch`` calls of at most 30 items, each call with exactly the effect of its single form.

Every call keeps its own exactly-once guards (:mod:`connectors.quickbooks.writes`,
:mod:`connectors.quickbooks.creates`): its ledger entry (the single form's key), its sent mark, and
after an ambiguous failure (a lost answer, a 5xx, a timeout) the lookup of what may have been made
before anything is sent again; here that lookup is one query for the whole batch
(``DocNumber in (...)``, ``DisplayName in (...)``, ``Name in (...)``), and only the items it does
not find are sent again. A batch that creates is therefore not resent by the HTTP layer on its own.
Creates without such a key (a Payment without a number) go in a batch of their own that, like
their single form, relies on its ``requestid`` and may be resent by the HTTP layer.

Each item answered with a fault fails only its own call, with the typed error of that fault.
Updates read the records they need (no SyncToken given, full updates, a stale 5010 answer) with
one ``Id in (...)`` query per round instead of one GET each, and re-apply their own fields on top,
as :func:`connectors.quickbooks.writes.apply_update` does.

Calls of one batch with the same ledger key share one flight (one item, one result). The
``requestid`` of each ``/batch`` is derived from its items' keys (at most 36 characters).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.creates import (
    DUPLICATE_KEY_ERRORS,
    NAME_FIELDS,
    SENDS,
    SENT_NAMESPACE,
    count_lost_answer,
    is_ambiguous,
    mark_key,
    natural_key,
    put_mark,
    rows_for,
)
from connectors.quickbooks.errors import error_from_faults, faults_in, quickbooks_error
from connectors.quickbooks.gather import Flights, Meeting, Seat, chunks, previewed, run_each, settle
from connectors.quickbooks.preview import preview_create, preview_update
from connectors.quickbooks.query import quote
from connectors.quickbooks.reads import not_found, read_many
from connectors.quickbooks.steps import step_client, step_entity, step_record
from connectors.quickbooks.writes import (
    STALE,
    batch_request_id,
    implicit_key,
    once,
    writable,
)
from runtime import BatchCall, BatchForm, OperationContext, SpliceError, backoff_delay

__all__ = ["BATCH_SIZE", "CREATE_BATCH", "UPDATE_BATCH", "create_batch", "entity_key",
           "update_batch"]

#: Items in one ``/batch`` (QuickBooks' documented most).
BATCH_SIZE = 30


def entity_key(params: Mapping[str, Any]) -> Hashable:
    """Calls share a batch when they write the same entity."""
    name = str(params.get("entity") or "").strip()
    return name[:1].upper() + name[1:]


def _no_entry() -> SpliceError:
    return quickbooks_error("SERVER_ERROR", "the batch answer has no entry for this item",
                            retryable=True)


def _answers(answers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(a.get("bId")): a for a in answers}


def _outcome(answer: dict[str, Any] | None, entity: str) -> dict[str, Any] | SpliceError:
    """An item's record, or its error."""
    if answer is None:
        return _no_entry()
    faults = faults_in(answer)
    if faults:
        return error_from_faults(faults)
    record = answer.get(entity)
    return record if isinstance(record, dict) else _no_entry()


# ---------------------------------------------------------------------------------- creates


@dataclass
class _Create:
    ctx: OperationContext
    client: QuickBooksClient
    entity: str
    body: dict[str, Any]
    key: str
    lookup: tuple[str, str] | None


def _create_items(seats: Sequence[Seat[_Create]]) -> list[dict[str, Any]]:
    return [{"bId": str(i), "operation": "create", s.item.entity: s.item.body}
            for i, s in enumerate(seats)]


async def _look_up_all(seats: Sequence[Seat[_Create]]) -> list[tuple[Seat[_Create], Any]]:
    """Each seat with the record its create may have made (or None): one query for them all."""
    first = seats[0].item
    assert first.lookup is not None
    field_name = first.lookup[0]
    values = list(dict.fromkeys(s.item.lookup[1] for s in seats if s.item.lookup))
    active = " and Active in (true, false)" if first.entity in NAME_FIELDS else ""
    sql = f"select * from {first.entity} where {field_name} in {quote(values)}{active}"
    rows = [row async for row in first.client.query(sql)]
    return [(s, rows_for(s.item.body, s.item.lookup, rows)) for s in seats if s.item.lookup]


async def _unmark(seats: Sequence[Seat[_Create]]) -> None:
    """A definite refusal made nothing: the sent marks go."""
    with anyio.CancelScope(shield=True):
        for s in seats:
            await s.item.ctx.store.delete(SENT_NAMESPACE,
                                          mark_key(s.item.client, s.item.entity, s.item.key))


def _found(seat: Seat[_Create], row: dict[str, Any], why: str) -> None:
    item = seat.item
    assert item.lookup is not None
    count_lost_answer(item.client, item.entity, "found")
    item.ctx.logger.warning("quickbooks.create: %s %s %s exists (Id %s): created by an earlier "
                            "attempt whose answer was lost (%s); not created again", item.entity,
                            item.lookup[0], item.lookup[1], row.get("Id"), why)
    seat.answer(row)


async def _create_plain(seats: Sequence[Seat[_Create]]) -> None:
    """Creates that cannot be looked up: one batch, its requestid their only guard."""
    client, entity = seats[0].item.client, seats[0].item.entity
    try:
        answers = _answers(await client.batch(
            _create_items(seats), request_id=batch_request_id(s.item.key for s in seats)))
    except SpliceError as exc:
        for s in seats:
            s.fail(exc)
        return
    for i, s in enumerate(seats):
        outcome = _outcome(answers.get(str(i)), entity)
        s.fail(outcome) if isinstance(outcome, SpliceError) else s.answer(outcome)


async def _create_keyed(seats: Sequence[Seat[_Create]]) -> None:
    """Creates with a key to look them up by: marked, sent, and after a lost answer looked up
    (one query) before the ones not found are sent again."""
    client, entity = seats[0].item.client, seats[0].item.entity
    pending: list[Seat[_Create]] = []
    suspects: list[Seat[_Create]] = []
    #: Seats an earlier send may have made (a mark found, or sent again after a lost answer).
    maybe_made: set[int] = set()
    for s in seats:
        item = s.item
        if await item.ctx.store.get(SENT_NAMESPACE, mark_key(client, entity, item.key)) is not None:
            suspects.append(s)
        else:
            assert item.lookup is not None
            await put_mark(item.ctx, client, entity, item.key, item.lookup)
            pending.append(s)
    if suspects:
        for s, row in await _look_up_all(suspects):
            if row is not None:
                _found(s, row, "sent before")
            else:
                maybe_made.add(id(s))
                pending.append(s)
    for send in range(1, SENDS + 1):
        if not pending:
            return
        lost: list[Seat[_Create]] = []
        refused: dict[int, SpliceError] = {}
        error: SpliceError | None = None
        try:
            answers = _answers(await client.batch(
                _create_items(pending), request_id=batch_request_id(s.item.key for s in pending),
                retry_unanswered=False))
        except SpliceError as exc:
            if not is_ambiguous(exc):
                await _unmark(pending)
                for s in pending:
                    s.fail(exc)
                return
            lost, error = list(pending), exc
        else:
            for i, s in enumerate(pending):
                outcome = _outcome(answers.get(str(i)), entity)
                if not isinstance(outcome, SpliceError):
                    s.answer(outcome)
                elif is_ambiguous(outcome):
                    lost.append(s)
                    error = outcome
                elif id(s) in maybe_made and outcome.error_type in DUPLICATE_KEY_ERRORS:
                    refused[id(s)] = outcome
                else:
                    await _unmark([s])
                    s.fail(outcome)
            # Refused as a duplicate of its own key, after an earlier send that may have landed
            # (a replica killed mid-send, whose create arrived after the lookup): that is ours.
            taken = [s for s in pending if id(s) in refused]
            for s, row in await _look_up_all(taken) if taken else []:
                if row is not None:
                    _found(s, row, "its key was taken by an earlier send")
                else:
                    await _unmark([s])
                    s.fail(refused[id(s)])
        if not lost:
            return
        assert error is not None
        if send == SENDS:
            for s in lost:
                s.fail(error)
            return
        await anyio.sleep(backoff_delay(send, initial=client.settings.retry_delay, maximum=30.0,
                                        retry_after=error.retry_after))
        pending = []
        for s, row in await _look_up_all(lost):
            if row is not None:
                _found(s, row, error.error_type)
            else:
                count_lost_answer(client, entity, "resent")
                maybe_made.add(id(s))
                s.item.ctx.logger.info("quickbooks.create: %s %s %s not found after a lost answer "
                                       "(%s); sending again", entity, *(s.item.lookup or ("", "")),
                                       error.error_type)
                pending.append(s)


async def _send_creates(seats: list[Seat[_Create]]) -> None:
    async with anyio.create_task_group() as tg:
        for group in _by_entity(seats):
            for chunk in chunks([s for s in group if s.item.lookup is None], BATCH_SIZE):
                tg.start_soon(settle, chunk, _create_plain)
            for chunk in chunks([s for s in group if s.item.lookup is not None], BATCH_SIZE):
                tg.start_soon(settle, chunk, _create_keyed)


async def create_batch(calls: Sequence[BatchCall]) -> list[Any]:
    """``quickbooks.create`` for many calls: one result (the created record) or error each."""
    if any(call.ctx.dry_run for call in calls):
        return await previewed(calls, preview_create)
    meeting: Meeting[_Create] = Meeting(len(calls))
    flights = Flights()

    async def run(index: int, call: BatchCall) -> Any:
        ctx, params = call.ctx, call.params
        client, entity = step_client(ctx), step_entity(params)
        body = writable(step_record(ctx, params), entity)
        body.pop("Id", None)
        body.pop("SyncToken", None)
        key = params.get("idempotency-key")
        if not key:
            raise quickbooks_error("VALIDATION", "quickbooks.create needs an idempotency-key")
        item = _Create(ctx, client, entity, body, str(key), natural_key(entity, body))
        ledger = f"create:{entity}:{key}"
        result: dict[str, Any] = await flights.run(
            f"{client.realm_id}:{ledger}", index,
            lambda: once(ctx, client.realm_id, ledger, lambda: meeting.join(index, item)), meeting)
        ctx.annotate(entity=entity, record_id=str(result.get("Id", "")))
        return result

    return await run_each(calls, run, meeting, _send_creates)


# ---------------------------------------------------------------------------------- updates


@dataclass
class _Update:
    entity: str
    entity_id: str
    ours: dict[str, Any]
    sparse: bool
    sync: Any
    rid_key: str
    attempts: int
    client: QuickBooksClient
    fresh: dict[str, Any] | None = None
    attempt: int = 0

    def body(self) -> dict[str, Any]:
        """What this attempt sends: our fields on the SyncToken (sparse), or on the fresh record."""
        if self.sparse:
            return {"Id": self.entity_id, "SyncToken": str(self.sync), **self.ours, "sparse": True}
        base = writable(self.fresh or {}, self.entity)
        return {**base, **self.ours, "Id": self.entity_id, "SyncToken": str(self.sync),
                "sparse": False}


async def _refresh(seats: Sequence[Seat[_Update]]) -> None:
    """Read the seats' records (one query): their SyncToken and, for full updates, their fields."""
    first = seats[0].item
    rows = await read_many(first.client, first.entity, [s.item.entity_id for s in seats])
    for s in seats:
        row = rows.get(s.item.entity_id)
        if row is None:
            s.fail(not_found(s.item.entity, s.item.entity_id))
        else:
            s.item.fresh, s.item.sync = row, row["SyncToken"]


async def _update_chunk(seats: Sequence[Seat[_Update]]) -> None:
    client, entity = seats[0].item.client, seats[0].item.entity
    need = [s for s in seats if s.item.sync in (None, "") or not s.item.sparse]
    if need:
        await _refresh(need)
    live = [s for s in seats if not s.done.is_set()]
    while live:
        items = [{"bId": str(i), "operation": "update", entity: s.item.body()}
                 for i, s in enumerate(live)]
        # The SyncToken is part of the request: a batch answer is kept under its requestid even
        # when items in it failed (5010), so a retry on a newer SyncToken must be a new request.
        rid = batch_request_id(f"{s.item.rid_key}#{s.item.attempt}@{s.item.sync}" for s in live)
        try:
            answers = _answers(await client.batch(items, request_id=rid))
        except SpliceError as exc:
            for s in live:
                s.fail(exc)
            return
        stale: list[Seat[_Update]] = []
        for i, s in enumerate(live):
            outcome = _outcome(answers.get(str(i)), entity)
            if not isinstance(outcome, SpliceError):
                s.answer(outcome)
            elif outcome.error_type == STALE and s.item.attempt < s.item.attempts:
                stale.append(s)
            else:
                s.fail(outcome)
        if stale:
            await _refresh(stale)
            for s in stale:
                s.item.attempt += 1
        live = [s for s in stale if not s.done.is_set()]


#: What a /batch chunk holds: creates, or updates.
ItemT = TypeVar("ItemT", _Create, _Update)


def _by_entity(seats: list[Seat[ItemT]]) -> list[list[Seat[ItemT]]]:
    """The seats by the entity they write (a /batch chunk holds one entity's items)."""
    groups: dict[str, list[Seat[ItemT]]] = {}
    for seat in seats:
        groups.setdefault(seat.item.entity, []).append(seat)
    return list(groups.values())


async def _send_updates(seats: list[Seat[_Update]]) -> None:
    async with anyio.create_task_group() as tg:
        for group in _by_entity(seats):
            for chunk in chunks(group, BATCH_SIZE):
                tg.start_soon(settle, chunk, _update_chunk)


async def update_batch(calls: Sequence[BatchCall]) -> list[Any]:
    """``quickbooks.update`` for many calls: one result (the updated record) or error each."""
    if any(call.ctx.dry_run for call in calls):
        return await previewed(calls, preview_update)
    meeting: Meeting[_Update] = Meeting(len(calls))
    flights = Flights()

    async def run(index: int, call: BatchCall) -> Any:
        ctx, params = call.ctx, call.params
        client, entity = step_client(ctx), step_entity(params)
        record = step_record(ctx, params)
        if not record.get("Id"):
            raise quickbooks_error("VALIDATION", f"an update of {entity} needs the record's Id")
        key = params.get("idempotency-key")
        ours = {k: v for k, v in writable(record, entity).items()
                if k not in ("Id", "SyncToken", "sparse")}
        item = _Update(entity, str(record["Id"]), ours, bool(params["sparse"]),
                       record.get("SyncToken"),
                       str(key) if key else implicit_key(ctx, "update", entity, record),
                       int(params["stale-retries"]), client)
        ledger = f"update:{entity}:{key}" if key else None
        return await flights.run(
            f"{client.realm_id}:{ledger}" if ledger else None, index,
            lambda: once(ctx, client.realm_id, ledger, lambda: meeting.join(index, item)), meeting)

    return await run_each(calls, run, meeting, _send_updates)


CREATE_BATCH = BatchForm(create_batch, max_size=BATCH_SIZE, key=entity_key)
UPDATE_BATCH = BatchForm(update_batch, max_size=BATCH_SIZE, key=entity_key)

"""Creates that survive a lost answer: look the record up by its own key before sending again.

When a create's answer is lost (a timeout, a 5xx, a connection dropped after the request went
out), QuickBooks may or may not have made the record. The ``requestid`` is meant to make a repeat
harmless, but Intuit documents no retention for it and one report shows a repeated Payment create
making a second payment. So a create is never sent again blindly:

1. before the first send, a *sent* mark for the write is put in the object store. A mark found by a
   later attempt (a step retry, an event replayed after a crash, another replica) says an earlier
   send may have worked, and the lookup of step 2 comes first. A definite refusal (a 4xx: nothing
   was made) removes the mark; an answered create leaves it (the ledger's ``done`` entry answers
   any repeat before it is read), until :data:`SENT_MARK_TTL` drops it;
2. after an ambiguous failure, the record is looked up by its deterministic key: the
   ``DocNumber`` of a transaction (the shipped flows number their invoices from the opportunity
   id), or the unique name of a name-list entity (``DisplayName`` of a Customer, Vendor or
   Employee, ``Name`` of an Item, Account, ...). Found: that is the record the lost answer
   carried; it is returned and a warning names the entity and key. Not found: the create is sent
   again with the same ``requestid``. Either way ``splice_lost_answers_total`` counts it;
3. the HTTP layer does not resend such a create by itself (it is not marked idempotent), so no
   repeat escapes step 2.

A create whose body has no such key (a Payment without a number) cannot be looked up: it keeps
relying on the ``requestid`` alone, and the HTTP layer retries it as before.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anyio

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.query import quote
from connectors.quickbooks.writes import request_id
from runtime import OperationContext, SpliceError, backoff_delay

__all__ = ["AMBIGUOUS", "DUPLICATE_KEY_ERRORS", "NAME_FIELDS", "SENDS", "SENT_MARK_TTL",
           "SENT_NAMESPACE", "count_lost_answer", "create_record", "is_ambiguous", "mark_key", "natural_key", "put_mark", "rows_for"]

#: ``{realm}:{entity}:{idempotency key}`` -> what was sent and when.
SENT_NAMESPACE = "quickbooks-sent"
#: How long a sent mark is kept: longer than any retry or replay of the write is expected.
SENT_MARK_TTL = 30 * 86400.0
#: Failures after which the create may have happened: the request went out, no answer came back.
AMBIGUOUS = frozenset({"QUICKBOOKS:TIMEOUT", "QUICKBOOKS:CONNECTIVITY", "QUICKBOOKS:SERVER_ERROR"})
#: Sends of one create in one attempt of its step (the first and two after a lookup).
SENDS = 3
#: The unique name of each name-list entity QuickBooks enforces (6240 on a duplicate).
NAME_FIELDS = {"Customer": "DisplayName", "Vendor": "DisplayName", "Employee": "DisplayName",
                "Item": "Name", "Account": "Name", "Class": "Name", "Department": "Name",
                "Term": "Name", "PaymentMethod": "Name"}


#: Refusals of a create because its key is taken: after an earlier send that may have landed, the
#: record under that key (for the same customer) is the one this create makes.
DUPLICATE_KEY_ERRORS = frozenset({"QUICKBOOKS:DUPLICATE_DOC_NUMBER", "QUICKBOOKS:DUPLICATE_NAME"})


def natural_key(entity: str, body: Mapping[str, Any]) -> tuple[str, str] | None:
    """The field and value that find ``body``'s record once created, or ``None`` when it has none."""
    field = NAME_FIELDS.get(entity, "DocNumber")
    value = body.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return field, str(value)


def is_ambiguous(exc: SpliceError) -> bool:
    """Whether the write may have happened although it failed (its answer was lost)."""
    return exc.error_type in AMBIGUOUS


def mark_key(client: QuickBooksClient, entity: str, key: str) -> str:
    """The sent mark of a create with idempotency ``key``."""
    return f"{client.realm_id}:{entity}:{key}"


async def put_mark(ctx: OperationContext, client: QuickBooksClient, entity: str, key: str,
                   lookup: tuple[str, str]) -> None:
    """Say, before it is sent, that this create may be made from now on."""
    field, value = lookup
    await ctx.store.put(SENT_NAMESPACE, mark_key(client, entity, key),
                        {"entity": entity, "field": field, "value": value, "sentAt": time.time()},
                        ttl=SENT_MARK_TTL)


def rows_for(body: Mapping[str, Any], key: tuple[str, str],
             rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Among rows a lookup found, the one ``body`` would have made: the key's value (the exact
    spelling first, then as QuickBooks compares names: ignoring case) and, for a transaction,
    the same customer (a number may be reused for another one)."""
    field, value = key
    customer = body.get("CustomerRef")
    wanted = customer.get("value") if isinstance(customer, dict) else None

    def ours(row: dict[str, Any]) -> bool:
        theirs = row.get("CustomerRef")
        return wanted is None or (isinstance(theirs, dict) and str(theirs.get("value")) == str(wanted))

    exact = [r for r in rows if str(r.get(field)) == value and ours(r)]
    loose = [r for r in rows if str(r.get(field)).casefold() == value.casefold() and ours(r)]
    found = exact or loose
    return found[0] if found else None


async def _look_up(client: QuickBooksClient, entity: str, body: Mapping[str, Any],
                   key: tuple[str, str]) -> dict[str, Any] | None:
    """The record carrying ``key``, if it is the one ``body`` would have made."""
    field, value = key
    active = " and Active in (true, false)" if entity in NAME_FIELDS else ""
    rows = (await client.query_page(f"select * from {entity} where {field} = {quote(value)}"
                                    f"{active} MAXRESULTS 2")).get(entity) or []
    customer = body.get("CustomerRef")
    wanted = customer.get("value") if isinstance(customer, dict) else None
    for row in rows:
        # A transaction's number may be reused for another customer: only ours counts.
        theirs = row.get("CustomerRef")
        if wanted is None or (isinstance(theirs, dict) and str(theirs.get("value")) == str(wanted)):
            found: dict[str, Any] = row
            return found
    return None


def count_lost_answer(client: QuickBooksClient, entity: str, outcome: str) -> None:
    """Tell the runtime's metrics what became of a create whose answer was lost."""
    if client.observer is not None:
        client.observer.lost_answer("quickbooks", entity, outcome)


async def create_record(ctx: OperationContext, client: QuickBooksClient, entity: str,
                        body: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``POST /{entity}`` once for idempotency ``key``, even when answers are lost.

    Run it inside the ledger's ``once`` (see :func:`connectors.quickbooks.writes.once`): the
    ledger answers a replay whose create was answered; this answers one whose answer was lost.
    """
    rid = request_id(key)
    lookup = natural_key(entity, body)
    if lookup is None:
        return await client.write(entity, body, request_id=rid)
    field, value = lookup
    mark = mark_key(client, entity, key)
    maybe_made = await ctx.store.get(SENT_NAMESPACE, mark) is not None
    if maybe_made:
        found = await _look_up(client, entity, body, lookup)
        if found is not None:
            count_lost_answer(client, entity, "found")
            ctx.logger.warning("quickbooks.create: %s %s %s exists (Id %s): created by an earlier "
                               "attempt whose answer was lost; not created again",
                               entity, field, value, found.get("Id"))
            return found
    else:
        await put_mark(ctx, client, entity, key, lookup)
    for send in range(1, SENDS + 1):
        try:
            return await client.write(entity, body, request_id=rid, retry_unanswered=False)
        except SpliceError as exc:
            if not is_ambiguous(exc) and maybe_made and exc.error_type in DUPLICATE_KEY_ERRORS:
                # Its key is taken after an earlier send that may have landed late (a replica
                # killed mid-send): the record under it, for the same customer, is ours.
                found = await _look_up(client, entity, body, lookup)
                if found is not None:
                    count_lost_answer(client, entity, "found")
                    ctx.logger.warning("quickbooks.create: %s %s %s exists (Id %s): made by an "
                                       "earlier send; not created again", entity, field, value,
                                       found.get("Id"))
                    return found
            if not is_ambiguous(exc):
                with anyio.CancelScope(shield=True):
                    await ctx.store.delete(SENT_NAMESPACE, mark)  # refused: nothing was made
                raise
            if send == SENDS:
                raise
            maybe_made = True
            await anyio.sleep(backoff_delay(send, initial=client.settings.retry_delay,
                                            maximum=30.0, retry_after=exc.retry_after))
            found = await _look_up(client, entity, body, lookup)
            count_lost_answer(client, entity, "found" if found is not None else "resent")
            if found is not None:
                ctx.logger.warning("quickbooks.create: %s %s %s was created (Id %s) but the answer "
                                   "was lost (%s); found by lookup, not created again",
                                   entity, field, value, found.get("Id"), exc.error_type)
                return found
            ctx.logger.info("quickbooks.create: %s %s %s not found after a lost answer (%s); "
                            "sending again with the same requestid", entity, field, value,
                            exc.error_type)
    raise AssertionError("unreachable")  # pragma: no cover

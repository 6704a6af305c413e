"""Writes that happen once: ``requestid`` from the idempotency key, the ledger, 5010 recovery.

Exactly-once effects take three guards, because Intuit does not document how long it remembers a
``requestid`` and one report says a repeat went through twice:

1. the idempotency ledger in the object store (``ctx.once``): a replayed event finds its key ``done`` and gets the
   recorded result back without any call to QuickBooks;
2. the ``requestid`` query parameter, derived deterministically from the key (at most 50 characters,
   36 for batch), so a retry after a timeout or a 5xx is answered with the first response; a
   create is not left to it alone: after a lost answer it is looked up by its own key before it is
   sent again (:mod:`connectors.quickbooks.creates`);
3. stale-object recovery (5010): re-read the record, re-apply only the fields this write owns on top
   of the fresh version, and send again, a bounded number of times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.errors import quickbooks_error
from connectors.quickbooks.money import dumps, fill_line_amounts
from runtime import OperationContext, SpliceError

__all__ = [
    "LEDGER_NAMESPACE",
    "READ_ONLY",
    "apply_update",
    "batch_request_id",
    "implicit_key",
    "once",
    "request_id",
    "writable",
]

LEDGER_NAMESPACE = "quickbooks-ledger"
#: Seconds a ledger claim holds its key. A claim outlives its owner only when that process died (a
#: live one completes or releases it), and until then the key's executions fail IN_PROGRESS: kept
#: short so the flows' retries get past a crashed run's claims. Taking a claim over early is safe:
#: the write carries the same requestid, and a create the crashed run sent is looked up first.
CLAIM_LEASE = 20.0
#: Fields QuickBooks computes; never sent back in an update body.
READ_ONLY = frozenset({"MetaData", "domain", "time", "FullyQualifiedName", "Balance",
                       "BalanceWithJobs", "HomeBalance", "HomeTotalAmt", "Level", "UnappliedAmt",
                       "status"})
#: Entities whose TotalAmt the client sets (elsewhere it is the sum of the lines).
_TOTAL_WRITABLE = frozenset({"Payment", "Deposit", "JournalEntry"})
#: Entities whose LinkedTxn QuickBooks maintains (payments applied to an invoice).
_LINKS_COMPUTED = frozenset({"Invoice", "Bill"})
STALE = "QUICKBOOKS:STALE_OBJECT"
T = TypeVar("T")


def implicit_key(ctx: OperationContext, kind: str, entity: str, record: Any) -> str:
    """A requestid seed for a write without an idempotency key.

    The same execution (its correlation id: a source's event id when it has one) sending the
    same write from the same step gets the same ``requestid``, so the transport may retry it after
    a 5xx or a timeout. Without an explicit key there is no ledger entry: a new event may repeat
    the write on purpose.
    """
    digest = hashlib.sha256(dumps([ctx.correlation_id, ctx.path, kind, entity, record])).hexdigest()
    return f"sp-{digest[:40]}"


def request_id(key: str, limit: int = 50) -> str:
    """A stable ``requestid`` for an idempotency key: the key itself, or prefix + hash when long."""
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:min(32, limit - 4)]
    return f"{key[:limit - len(digest) - 1]}-{digest}"


def batch_request_id(keys: Iterable[str]) -> str:
    """The ``requestid`` of a ``/batch`` (at most 36 characters) from its items' keys: the same
    items sent again carry the same one, whatever their order."""
    digest = hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()
    return f"b-{digest[:34]}"


async def once(ctx: OperationContext, realm: str, key: str | None,
               call: Callable[[], Awaitable[T]]) -> T:
    """``ctx.once`` the QuickBooks way: per-realm keys, a short claim, ``QUICKBOOKS:IN_PROGRESS``.

    Runs ``call`` unless the ledger says this key's effect already happened (then returns the
    recorded result); without a key, ``call`` just runs.
    """
    def busy() -> SpliceError:
        return quickbooks_error("IN_PROGRESS", f"another execution is writing {key!r} right now",
                                retryable=True, retry_after=5.0, details={"idempotencyKey": key})

    return await ctx.once(f"{realm}:{key}" if key else None, call, namespace=LEDGER_NAMESPACE,
                          lease=CLAIM_LEASE, busy=busy)


def writable(record: Mapping[str, Any], entity: str = "") -> dict[str, Any]:
    """A record without the fields QuickBooks computes (a copy, money lines filled in)."""
    drop = set(READ_ONLY)
    if entity not in _TOTAL_WRITABLE:
        drop.add("TotalAmt")
    out = {k: v for k, v in record.items() if k not in drop}
    if entity in _LINKS_COMPUTED and "LinkedTxn" in out:
        # Payments are linked by QuickBooks; the estimate an invoice is made from, by the client.
        made_from = [link for link in out.pop("LinkedTxn") or []
                     if isinstance(link, Mapping) and link.get("TxnType") == "Estimate"]
        if made_from:
            out["LinkedTxn"] = made_from
    try:
        return fill_line_amounts(out)
    except ValueError as exc:
        raise quickbooks_error("VALIDATION", f"a sales line has an unusable Qty or UnitPrice: {exc}",
                               details={"element": "Line"}) from None


async def apply_update(client: QuickBooksClient, entity: str, record: Mapping[str, Any], *,
                       sparse: bool = True, key: str | None = None, attempts: int = 3,
                       operation: str | None = None, include: str | None = None) -> dict[str, Any]:
    """Update (or delete/void) ``record`` by Id, taking the fresh SyncToken on 5010.

    Only the fields present in ``record`` are ours: on a stale answer they are laid over a fresh
    read, so a change somebody else made meanwhile to other fields survives.
    """
    entity_id = record.get("Id")
    if not entity_id:
        raise quickbooks_error("VALIDATION", f"an update of {entity} needs the record's Id")
    ours = {k: v for k, v in writable(record, entity).items() if k not in ("Id", "SyncToken", "sparse")}
    sync = record.get("SyncToken")
    fresh: dict[str, Any] | None = None
    if sync in (None, "") or (not sparse and operation is None):
        fresh = await client.read(entity, str(entity_id))
        sync = fresh["SyncToken"]
    for attempt in range(attempts + 1):
        if sparse or operation is not None:
            body: dict[str, Any] = {"Id": str(entity_id), "SyncToken": str(sync), **ours}
            if operation is None or include == "void":
                body["sparse"] = True
        else:
            base = writable(fresh or {}, entity)
            body = {**base, **ours, "Id": str(entity_id), "SyncToken": str(sync), "sparse": False}
        rid = None
        if key:
            rid = request_id(key if attempt == 0 else f"{key}#{attempt}")
        try:
            return await client.write(entity, body, request_id=rid, operation=operation,
                                      include=include)
        except SpliceError as exc:
            if exc.error_type != STALE or attempt == attempts:
                raise
            fresh = await client.read(entity, str(entity_id))
            sync = fresh["SyncToken"]
    raise AssertionError("unreachable")  # pragma: no cover

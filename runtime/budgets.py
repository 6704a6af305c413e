"""API budgets as resources of the runtime: in the process, or in the store replicas share.

A connector asks its :class:`~runtime.context.ConnectionContext` for a named budget (requests per
period, burst, requests in flight) and gets a :class:`~runtime.limits.RateLimit`. Where it lives is
the runtime's decision, made here by :func:`open_budget`:

* with a store only this process uses (SQLite, memory, none) it is a plain in-process
  :class:`~runtime.limits.RateLimit`, exactly as a connector would build it;
* with a store replicas share (PostgreSQL) its bucket and its in-flight slots are rows of that
  store (:mod:`runtime.store.budgets`), so N replicas together keep to one account's limits, and a
  pause after a 429 stops them all.

In this process a shared budget still queues its own callers first (per bucket the two lanes of
:class:`~runtime.limits.Lanes`, per slot set one limiter), so each replica sends the store at most
one attempt per lane at a time, not one per waiter.

**What it costs.** A request on a shared budget makes three short statements on the store's pool
(take a slot, take its tokens, free the slot; a renewal every few seconds for a slow one), so the
store's health now paces the API calls too: a store that fails often slows them down.

**When the store does not answer.** A shared budget never falls back to spending alone: a replica
that cannot count with the others could spend what they spend. It retries the store for up to
:data:`OUTAGE_WAIT` seconds, then raises the store's typed, retryable ``STORE:UNAVAILABLE`` error,
which the flow's error handling retries with backoff like any other store failure (the idempotency
ledger and the watermarks need the store as well). A request already sent is not affected: freeing
its slot is asked again through a blip, then left to this process's next take, and a slot nobody
frees (its replica died) frees itself when its lease ends.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import TypeVar

import anyio

from runtime.limits import Lanes, RateLimit, portions
from runtime.store._locking import beside
from runtime.store.base import ObjectStore, StoreUnavailableError
from runtime.store.budgets import BudgetTables, budget_tables

__all__ = ["OUTAGE_WAIT", "SLOT_LEASE", "StoreInFlight", "StoreTokenBucket", "open_budget"]

log = logging.getLogger("splice.budgets")

T = TypeVar("T")

#: Seconds a shared budget keeps asking a store that fails before it raises ``STORE:UNAVAILABLE``.
OUTAGE_WAIT = 10.0
#: Seconds an in-flight slot stays taken unless renewed (its holder renews it every third of that
#: while the request runs): the slots of a replica killed mid-request come back this soon.
SLOT_LEASE = 15.0
#: Longest sleep between two attempts at a bucket or a slot (the store is asked again after it).
MAX_POLL = 0.25


async def _persist(call: Callable[[], Awaitable[T]], what: str) -> T:
    """``call()``, asked again while the store is unavailable, for up to :data:`OUTAGE_WAIT`."""
    deadline = anyio.current_time() + OUTAGE_WAIT
    delay = 0.0  # a cut connection is replaced at once: the first retry goes out right away
    while True:
        try:
            return await call()
        except StoreUnavailableError as exc:
            if anyio.current_time() + delay > deadline:
                raise StoreUnavailableError(f"the shared API budget {what} cannot be counted: "
                                            f"{exc.message}") from exc
            log.warning("the store does not answer for the API budget %s; asking again", what)
            await anyio.sleep(delay)
            delay = min(max(delay * 2, 0.05), 1.0)


class StoreTokenBucket:
    """A :class:`~runtime.limits.Bucket` kept in the store's ``budget_buckets`` under ``key``."""

    def __init__(self, tables: BudgetTables, key: str, rate: float, per: float, *,
                 burst: float | None = None) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and per must be positive")
        self.tables = tables
        self.key = key
        self.rate = rate
        self.per = per
        self.capacity = float(burst if burst is not None else rate)
        # This process's callers ask the store one at a time, one-token requests in a lane of their own.
        self._lanes = Lanes(self.capacity)
        self._local_pause_until = float("-inf")
        self._unpublished_pause = 0.0

    @property
    def interval(self) -> float:
        """Seconds between two tokens at the steady rate."""
        return self.per / self.rate

    async def take(self, tokens: float = 1.0) -> float:
        """Wait until ``tokens`` are taken; the database time of the (last) grant."""
        async with self._lanes.turn(tokens):
            granted = 0.0
            for portion in portions(tokens, self.capacity):
                while True:
                    await self._publish_pause()
                    left = self._local_pause_until - anyio.current_time()
                    if left > 0:
                        await anyio.sleep(left)
                        continue
                    result = await _persist(partial(self.tables.take, self.key, float(portion),
                                                    self.capacity, self.interval), self.key)
                    if result.granted_at is not None:
                        granted = result.granted_at
                        if tokens > 1:
                            self._lanes.portion_taken()
                        break
                    await anyio.sleep(min(max(result.wait, 0.001), MAX_POLL))
            return granted

    async def acquire(self, tokens: float = 1.0) -> None:
        """Wait until ``tokens`` are available in the shared bucket, then take them."""
        await self.take(tokens)

    def pause(self, seconds: float) -> None:
        """Stop this process at once; the others learn it at this process's next acquisition
        (:meth:`apause` tells them before it returns)."""
        self._local_pause_until = max(self._local_pause_until, anyio.current_time() + seconds)
        self._unpublished_pause = max(self._unpublished_pause, seconds)

    async def apause(self, seconds: float) -> None:
        """Stop every replica spending this bucket for ``seconds``."""
        self.pause(seconds)
        await self._publish_pause()

    async def _publish_pause(self) -> None:
        seconds, self._unpublished_pause = self._unpublished_pause, 0.0
        if seconds <= 0:
            return
        try:
            await _persist(lambda: self.tables.pause(self.key, seconds, self.capacity, self.interval),
                           self.key)
        except BaseException:
            self._unpublished_pause = max(self._unpublished_pause, seconds)
            raise


class StoreInFlight:
    """An :class:`~runtime.limits.InFlight` of ``limit`` slots kept in the store under ``key``."""

    def __init__(self, tables: BudgetTables, key: str, limit: int, *,
                 lease: float = SLOT_LEASE) -> None:
        self.tables = tables
        self.key = key
        self.limit = limit
        self.lease = lease
        self._local = anyio.CapacityLimiter(limit)
        self._polling = anyio.Lock()
        #: Slots whose release the store did not confirm: freed before the next take.
        self._unreleased: list[tuple[int, str]] = []

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Hold one slot of the store's for the duration of the body."""
        async with self._local:
            holder = uuid.uuid4().hex
            slot: int | None = None
            try:
                slot = await self._take(holder)
                async with beside(partial(self._renew, slot, holder)):
                    yield
            finally:
                if slot is not None:
                    with anyio.CancelScope(shield=True):
                        await self._release(slot, holder)

    async def _take(self, holder: str) -> int:
        # One task of this process polls at a time; the others queue on the local limiter and lock.
        async with self._polling:
            delay = 0.005
            while True:
                slot = await _persist(partial(self._attempt, holder), self.key)
                if slot is not None:
                    return slot
                await anyio.sleep(delay)
                delay = min(delay * 2, MAX_POLL)

    async def _attempt(self, holder: str) -> int | None:
        # Shielded: a slot taken in the database must reach the caller, who frees it; cancelled
        # halfway, it would stay taken until its lease ends.
        with anyio.CancelScope(shield=True):
            await self._release_unreleased()
            slot = await self.tables.take_slot(self.key, self.limit, holder, self.lease)
        return slot

    async def _renew(self, slot: int, holder: str, _body: anyio.CancelScope) -> None:
        """Keep a slot taken while its request runs (a slow answer, a long wait for a token)."""
        while True:
            await anyio.sleep(self.lease / 3)
            try:
                if not await self.tables.renew_slot(self.key, slot, holder, self.lease):
                    log.warning("in-flight slot %s of %s expired while its request ran",
                                slot, self.key)
                    return
            except StoreUnavailableError as exc:  # the next renewal may get through
                log.warning("could not renew in-flight slot %s of %s (%s)", slot, self.key,
                            exc.message)

    async def _release(self, slot: int, holder: str) -> None:
        """Free a slot, asking again through a blip; a slot the store cannot be told about is kept
        to be freed before this process's next take (its lease frees it if this process dies)."""
        try:
            await _persist(partial(self.tables.release_slot, self.key, slot, holder), self.key)
        except StoreUnavailableError as exc:
            self._unreleased.append((slot, holder))
            log.warning("could not free in-flight slot %s of %s yet (%s); freeing it with the "
                        "next request", slot, self.key, exc.message)

    async def _release_unreleased(self) -> None:
        while self._unreleased:
            slot, holder = self._unreleased[0]
            await self.tables.release_slot(self.key, slot, holder)
            self._unreleased.pop(0)


def open_budget(store: ObjectStore | None, name: str, requests: float, period: float = 60.0, *,
                burst: float | None = None, max_concurrent: int | None = None,
                slot_lease: float = SLOT_LEASE) -> RateLimit:
    """The budget ``name``: in ``store`` when replicas share it (PostgreSQL), else in this process.

    Budgets of one ``name`` in one store are one budget, whichever replica spends them: name them
    after the account they belong to (a realm, an org, with its base URL).
    """
    tables = budget_tables(store) if store is not None else None
    if tables is None:
        return RateLimit(requests, period, max_concurrent=max_concurrent, burst=burst)
    bucket = StoreTokenBucket(tables, name, requests, period, burst=burst)
    slots = StoreInFlight(tables, name, max_concurrent, lease=slot_lease) if max_concurrent else None
    return RateLimit.combine(bucket, slots)

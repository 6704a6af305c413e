"""The idempotency ledger: a replayed event must not create a second invoice.

Before a step with an idempotency key (``opp-006xx``) does its effect, it calls
:meth:`IdempotencyLedger.begin`:

* ``"new"``: nobody has done it; the caller now owns it for ``lease`` seconds, does the effect, then
  calls :meth:`~IdempotencyLedger.complete` with the result (the created invoice id), or
  :meth:`~IdempotencyLedger.release` if it failed, so a retry can take it;
* ``"done"``: it was done already; ``entry.result`` is what the first run recorded, and the step
  returns that instead of acting again;
* ``"in-progress"``: another task or replica owns it right now; retry later.

A claim whose owner died is taken over once its lease has run out. ``begin`` uses only
``put_if_absent`` and ``compare_and_set``, so two concurrent ``begin`` calls for one key, in one
process or on two replicas, give exactly one ``"new"``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import anyio

from runtime.store.base import ObjectStore
from runtime.store.ids import compare_and_delete, utc_iso

__all__ = ["IdempotencyLedger", "LedgerEntry", "LedgerState"]

LedgerState = Literal["new", "done", "in-progress"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """What :meth:`IdempotencyLedger.begin` or :meth:`~IdempotencyLedger.get` found for a key.

    ``owner`` identifies the claim (pass it to ``release`` so a claim taken over by someone else is
    left alone); ``result`` is set when ``state`` is ``"done"``; ``lease_until`` (epoch seconds) when
    it is ``"new"`` or ``"in-progress"``.
    """

    key: str
    state: LedgerState
    owner: str | None = None
    result: Any = None
    lease_until: float | None = None
    completed_at: str | None = None

    @property
    def is_new(self) -> bool:
        """Whether the caller now owns the key and must do the effect."""
        return self.state == "new"


class IdempotencyLedger:
    """Exactly-once bookkeeping for effects, keyed by idempotency key.

    ``ttl`` (seconds) bounds how long completed results are kept; ``None`` keeps them for good.
    ``clock`` (epoch seconds) must agree with the store's clock; tests inject a fake one.
    """

    def __init__(self, store: ObjectStore, namespace: str = "idempotency", *,
                 ttl: float | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.namespace = namespace
        self.ttl = ttl
        self.clock = clock

    async def begin(self, key: str, *, lease: float = 300.0) -> LedgerEntry:
        """Claim ``key`` unless it is done or claimed by a live owner."""
        owner = uuid.uuid4().hex
        while True:
            now = self.clock()
            lease_until = now + lease
            claim = {"state": "in-progress", "owner": owner, "lease_until": lease_until,
                     "started_at": utc_iso(now)}
            if await self.store.put_if_absent(self.namespace, key, claim):
                return LedgerEntry(key, "new", owner=owner, lease_until=lease_until)
            current = await self.store.get(self.namespace, key)
            if current is None:
                continue  # released between our two calls: try again
            if current.get("state") == "done":
                return self._done(key, current)
            if current.get("lease_until", 0.0) > now:
                return LedgerEntry(key, "in-progress", owner=current.get("owner"),
                                   lease_until=current.get("lease_until"))
            # The owner's lease ran out (it crashed or hung): take over, unless someone beat us.
            if await self.store.compare_and_set(self.namespace, key, current, claim):
                return LedgerEntry(key, "new", owner=owner, lease_until=lease_until)

    async def once(self, key: str, call: Callable[[], Awaitable[T]], *, lease: float = 300.0,
                   busy: Callable[[LedgerEntry], BaseException]) -> T:
        """Run ``call`` unless ``key``'s effect already happened; then return the recorded result.

        ``call``'s result is recorded (it must be storable data) and returned to every later
        caller of the key. When ``call`` fails, or the caller is cancelled, the claim is released
        (shielded from the cancellation) so a retry can do the effect; nothing is recorded. While
        another owner holds a live claim, the exception ``busy(entry)`` is raised.
        """
        entry = await self.begin(key, lease=lease)
        if entry.state == "done":
            return entry.result  # type: ignore[no-any-return]
        if entry.state == "in-progress":
            raise busy(entry)
        try:
            result = await call()
        except BaseException:
            with anyio.CancelScope(shield=True):  # also when the step was cancelled
                await self.release(key, owner=entry.owner)
            raise
        await self.complete(key, result)
        return result

    async def complete(self, key: str, result: Any = None) -> None:
        """Record that the effect happened and what it produced (kept for ``ttl``)."""
        record = {"state": "done", "result": result, "completed_at": utc_iso(self.clock())}
        await self.store.put(self.namespace, key, record, ttl=self.ttl)

    async def release(self, key: str, *, owner: str | None = None) -> bool:
        """Give up a claim after a failure, so that a retry can ``begin`` it again.

        With ``owner`` (from the entry ``begin`` returned), only that claim is released; a claim
        taken over meanwhile by someone else stays. A completed key is never released.
        """
        while True:
            current = await self.store.get(self.namespace, key)
            if current is None or current.get("state") != "in-progress":
                return False
            if owner is not None and current.get("owner") != owner:
                return False
            if await compare_and_delete(self.store, self.namespace, key, current):
                return True

    async def get(self, key: str) -> LedgerEntry | None:
        """``"done"`` or live ``"in-progress"`` entry; ``None`` when nobody holds the key."""
        current = await self.store.get(self.namespace, key)
        if current is None:
            return None
        if current.get("state") == "done":
            return self._done(key, current)
        if current.get("state") == "in-progress" and current.get("lease_until", 0.0) > self.clock():
            return LedgerEntry(key, "in-progress", owner=current.get("owner"),
                               lease_until=current.get("lease_until"))
        return None

    async def forget(self, key: str) -> bool:
        """Drop a key whatever its state (an operator undoing a record by hand)."""
        return await self.store.delete(self.namespace, key)

    @staticmethod
    def _done(key: str, record: dict[str, Any]) -> LedgerEntry:
        return LedgerEntry(key, "done", result=record.get("result"),
                           completed_at=record.get("completed_at"))

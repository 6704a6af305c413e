"""The idempotency ledger: an effect keyed by an idempotency key happens once."""

from __future__ import annotations

import anyio
import pytest

from runtime.store import IdempotencyLedger, LedgerEntry, ObjectStore

from .conftest import Backend, FakeClock

pytestmark = pytest.mark.anyio


async def test_first_begin_is_new_then_done_with_result(store: ObjectStore, clock: FakeClock) -> None:
    """The first caller owns the key; after complete, callers get the stored result."""
    ledger = IdempotencyLedger(store, clock=clock)
    entry = await ledger.begin("opp-006A")
    assert entry.state == "new" and entry.is_new
    assert (await ledger.begin("opp-006A")).state == "in-progress"
    await ledger.complete("opp-006A", {"invoiceId": "145"})
    again = await ledger.begin("opp-006A")
    assert again.state == "done"
    assert again.result == {"invoiceId": "145"}
    assert (await ledger.get("opp-006A")).result == {"invoiceId": "145"}


async def test_concurrent_begins_give_exactly_one_new(backend: Backend) -> None:
    """Many tasks on two store instances begin the same key: exactly one may do the effect."""
    ledgers = [IdempotencyLedger(backend.open(), clock=backend.clock) for _ in range(2)]
    states: list[str] = []

    async def begin(n: int) -> None:
        states.append((await ledgers[n % 2].begin("opp-006B")).state)

    async with anyio.create_task_group() as tg:
        for n in range(60):
            tg.start_soon(begin, n)
    assert states.count("new") == 1
    assert states.count("in-progress") == 59


async def test_release_lets_a_retry_take_the_key(store: ObjectStore, clock: FakeClock) -> None:
    """A failed attempt releases its claim; the retry gets "new"; a stale owner cannot release it."""
    ledger = IdempotencyLedger(store, clock=clock)
    first = await ledger.begin("opp-006C")
    assert await ledger.release("opp-006C", owner=first.owner) is True
    assert await ledger.get("opp-006C") is None
    retry = await ledger.begin("opp-006C")
    assert retry.state == "new"
    assert await ledger.release("opp-006C", owner=first.owner) is False
    assert (await ledger.begin("opp-006C")).state == "in-progress"


async def test_completed_key_is_never_released(store: ObjectStore, clock: FakeClock) -> None:
    """Releasing a done key changes nothing: the invoice exists, the result stays."""
    ledger = IdempotencyLedger(store, clock=clock)
    await ledger.begin("opp-006D")
    await ledger.complete("opp-006D", "inv-9")
    assert await ledger.release("opp-006D") is False
    assert (await ledger.begin("opp-006D")).result == "inv-9"


async def test_dead_owner_is_taken_over_after_its_lease(store: ObjectStore, clock: FakeClock) -> None:
    """A claim whose owner vanished blocks others only until its lease runs out."""
    ledger = IdempotencyLedger(store, clock=clock)
    await ledger.begin("opp-006E", lease=60)
    clock.advance(30)
    assert (await ledger.begin("opp-006E")).state == "in-progress"
    clock.advance(31)
    assert await ledger.get("opp-006E") is None
    takeover = await ledger.begin("opp-006E")
    assert takeover.state == "new"
    assert (await ledger.begin("opp-006E")).state == "in-progress"


async def test_results_survive_a_restart(backend: Backend) -> None:
    """A completed key is still done after the process restarts."""
    first = backend.open()
    await IdempotencyLedger(first).complete("opp-006F", {"invoiceId": "7"})
    await first.aclose()
    entry = await IdempotencyLedger(backend.open()).begin("opp-006F")
    assert entry == LedgerEntry("opp-006F", "done", result={"invoiceId": "7"},
                                completed_at=entry.completed_at)


async def test_results_expire_with_optional_ttl(store: ObjectStore, clock: FakeClock) -> None:
    """With a ttl, completed keys are forgotten after it (and could be done again)."""
    ledger = IdempotencyLedger(store, ttl=3600, clock=clock)
    await ledger.begin("k")
    await ledger.complete("k", 1)
    clock.advance(3601)
    assert (await ledger.begin("k")).state == "new"

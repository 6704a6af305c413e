"""Flows against the emulator with faults on: nothing duplicated, nothing lost, limits kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import anyio
import pytest

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.emulator import create_app
from runtime.errors import SpliceError
from runtime.resources import RuntimeResources
from runtime.store import ObjectStore
from tests.support.quickbooks import REALM, SEED_REFRESH_TOKEN, connect, run_op, typed_settings

pytestmark = pytest.mark.anyio


async def _with_retries(step: Callable[[], Awaitable[Any]], attempts: int = 8) -> Any:
    """What a flow's ``on-error: retry`` does with retryable errors (without the long waits)."""
    for attempt in range(attempts):
        try:
            return await step()
        except SpliceError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
            await anyio.sleep(0.05)
    raise AssertionError("unreachable")


async def _opportunity_to_invoice(qb: QuickBooksClient, store: ObjectStore, opp: int) -> None:
    account = f"Account {opp % 4}"
    customer = await _with_retries(lambda: run_op(
        "find-or-create", qb, store, record={"DisplayName": account}))
    record = {"CustomerRef": {"value": customer["Id"]}, "DocNumber": f"opp-{opp}", "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 0, "SalesItemLineDetail": {
            "ItemRef": {"value": "9"}, "Qty": Decimal("1.5"), "UnitPrice": Decimal("33.33")}}]}
    invoice = await _with_retries(lambda: run_op("create", qb, store, entity="Invoice",
                                                 record=record, idempotency_key=f"opp-{opp}"))
    await _with_retries(lambda: run_op(
        "update", qb, store, entity="Invoice", idempotency_key=f"opp-{opp}-memo",
        record={"Id": invoice["Id"], "CustomerMemo": {"value": f"Thanks for opp {opp}"}}))


async def test_faults_cause_no_duplicates_and_no_lost_writes(store: ObjectStore) -> None:
    """12 opportunities, each delivered twice, under 5xx, lost answers, token expiry, stale edits."""
    app = create_app(refresh_token=SEED_REFRESH_TOKEN, faults={
        "fail_next": 2, "fail_status": 503, "fail_after_commit": 3, "expire_tokens": True,
        "stale_updates": 3, "latency": 0.005})
    faults = app.state.emulator.faults
    # The realm's real budget (500 a minute) would make this test wait; the emulator allows more.
    async with connect(app, store, **{"requests-per-minute": 6000}) as qb:
        async with anyio.create_task_group() as tg:
            for opp in range(12):
                tg.start_soon(_opportunity_to_invoice, qb, store, opp)
        assert faults.fail_after_commit == 0 and faults.stale_updates == 0 and faults.fail_next == 0
        writes = dict(app.state.emulator.companies[REALM].requests)
        faults.update({"fail_next": 2, "fail_status": 500, "expire_tokens": True})
        async with anyio.create_task_group() as tg:
            for opp in range(12):  # the same events again: replays must change nothing
                tg.start_soon(_opportunity_to_invoice, qb, store, opp)
    company = app.state.emulator.companies[REALM]
    invoices = list(company.tables["Invoice"].values())
    assert sorted(i["DocNumber"] for i in invoices) == sorted(f"opp-{o}" for o in range(12))
    assert all(i["CustomerMemo"]["value"] == f"Thanks for {i['DocNumber'].replace('-', ' ')}"
               for i in invoices)
    assert all(i["TotalAmt"] == Decimal("50.00") for i in invoices)
    names = [c["DisplayName"] for c in company.tables["Customer"].values()]
    assert sorted(n for n in names if n.startswith("Account")) == [f"Account {i}" for i in range(4)]
    assert company.requests == writes  # the replayed events sent no write at all


async def test_concurrency_is_limited_up_front(store: ObjectStore) -> None:
    """The connection keeps to the realm's in-flight limit: the emulator never throttles."""
    app = create_app(refresh_token=SEED_REFRESH_TOKEN, max_concurrent=2, faults={"latency": 0.01})
    async with connect(app, store, **{"max-concurrent": 2}) as qb:
        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(qb.read, "Customer", "11")
        status = await qb.status()
    assert app.state.emulator.throttle.throttled == 0
    assert status["requestsLastMinute"] == 12


async def test_two_connections_to_one_realm_share_its_budget(emulator: Any, store: ObjectStore) -> None:
    """Rate limits belong to the realm, not to the connection: two connections of one runtime to one
    company spend one budget, and a connection of another runtime has its own."""
    runtime = RuntimeResources()
    async with (connect(emulator, store, resources=runtime) as a,
                connect(emulator, store, resources=runtime) as b,
                connect(emulator, store, resources=RuntimeResources()) as elsewhere):
        assert a.limits is b.limits
        assert elsewhere.limits is not a.limits


async def test_throttled_answer_is_retried(store: ObjectStore) -> None:
    """A 429 (XML body) is retried by the transport; the call succeeds."""
    app = create_app(refresh_token=SEED_REFRESH_TOKEN, faults={"throttle_next": 1})
    async with connect(app, store) as qb:
        assert (await qb.read("Customer", "11"))["Id"] == "11"
    assert app.state.emulator.faults.throttle_next == 0


@pytest.mark.parametrize("per_minute", [500, 100, 20])
def test_the_budget_never_puts_more_than_the_limit_into_one_rolling_minute(per_minute: int) -> None:
    """QuickBooks counts requests (and batch calls) in any rolling minute, as they arrive: a full
    bucket spent at once, plus the steady refill over the minute and the ``rate-jitter`` by which
    arrivals may bunch, plus the tokens a batch of 30 spent in portions before the minute began,
    stay within the limit (a bucket of N refilling N per minute would let 2N through); and the
    budget keeps no more than it must (at most two requests under the limit)."""
    from connectors.quickbooks.client import realm_limits
    from connectors.quickbooks.config import QuickBooksSettings

    settings = QuickBooksSettings.from_mapping(typed_settings(**{
        "client-id": "c", "client-secret": "s", "realm-id": REALM, "base-url": "http://qb.test",
        "requests-per-minute": per_minute}))
    limits = realm_limits(settings)
    spill = max(min(30, per_minute // 2) - limits.general.bucket.capacity, 0)
    for bucket, limit, early in ((limits.general.bucket, per_minute, spill), (limits.batch.bucket, 40, 0)):
        worst_minute = bucket.capacity + (60.0 + settings.rate_jitter) / bucket.interval + early
        assert limit - 2 <= worst_minute <= limit

"""quickbooks.changes: CDC polling with a stored watermark, deletions, the 30-day limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.emulator import create_app
from connectors.quickbooks.sources import SOURCES, poll_entity
from runtime.params import compile_params
from runtime.store import ObjectStore
from runtime.testing import typed_call, wait_until
from tests.support.quickbooks import SEED_REFRESH_TOKEN, FakeSourceContext, connect, run_op

pytestmark = pytest.mark.anyio

CHANGES = next(s for s in SOURCES if s.name == "changes")
run_changes = typed_call(CHANGES)


def _invoice(doc: str) -> dict[str, Any]:
    return {"CustomerRef": {"value": "11"}, "DocNumber": doc, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 75,
         "SalesItemLineDetail": {"ItemRef": {"value": "9"}, "Qty": 1, "UnitPrice": 75}}]}


def test_durations() -> None:
    """Trigger durations in the flow language's forms reach the source as seconds."""
    coerce = compile_params(CHANGES.params)
    assert [coerce({"interval": v})["interval"] for v in (30, "30s", "5m", "1h", "1d", "250ms")] == [
        30, 30, 300, 3600, 86400, 0.25]


async def test_changes_are_delivered_once_and_deletions_as_deletes(
        qb: QuickBooksClient, store: ObjectStore) -> None:
    """Creates, then an update and a delete; nothing is delivered twice."""
    ctx = FakeSourceContext(qb, store)
    state: dict[str, Any] = {}
    now = datetime.now(UTC)
    first = await run_op("create", qb, store, entity="Invoice", record=_invoice("C-1"),
                         idempotency_key="c-1")
    second = await run_op("create", qb, store, entity="Invoice", record=_invoice("C-2"),
                          idempotency_key="c-2")
    assert await poll_entity(ctx, qb, "Invoice", state, now, 3600)
    assert [(e.attributes["entityId"], e.attributes["operation"]) for e in ctx.events] == [
        (first["Id"], "Create"), (second["Id"], "Create")]
    assert await poll_entity(ctx, qb, "Invoice", state, datetime.now(UTC), 3600)
    assert len(ctx.events) == 2  # the watermark's own rows are not delivered again
    await run_op("update", qb, store, entity="Invoice", record={"Id": first["Id"], "PrivateNote": "x"})
    await run_op("delete", qb, store, entity="Invoice", id=second["Id"])
    assert await poll_entity(ctx, qb, "Invoice", state, datetime.now(UTC), 3600)
    assert [(e.attributes["entityId"], e.attributes["operation"]) for e in ctx.events[2:]] == [
        (first["Id"], "Update"), (second["Id"], "Delete")]
    assert ctx.events[3].payload["status"] == "Deleted"


async def test_watermark_stays_when_an_event_was_not_done(qb: QuickBooksClient,
                                                          store: ObjectStore) -> None:
    """A failed event keeps the watermark where it was, so it comes again."""
    ctx = FakeSourceContext(qb, store, outcome=lambda _e: "failed")
    state: dict[str, Any] = {}
    assert not await poll_entity(ctx, qb, "Customer", state, datetime.now(UTC), 3600)
    assert state == {}


async def test_watermark_older_than_30_days_is_clamped(qb: QuickBooksClient, store: ObjectStore) -> None:
    """CDC sees 30 days; an older watermark is clamped (and logged) instead of failing forever."""
    ctx = FakeSourceContext(qb, store)
    old = (datetime.now(UTC) - timedelta(days=45)).isoformat()
    state: dict[str, Any] = {"Customer": {"since": old, "seen": []}}
    assert await poll_entity(ctx, qb, "Customer", state, datetime.now(UTC), 3600)
    assert len(ctx.events) == 3
    assert datetime.fromisoformat(state["Customer"]["since"]) > datetime.now(UTC) - timedelta(days=1)


async def test_the_loop_saves_state_after_handling_and_stops_on_shutdown(
        qb: QuickBooksClient, store: ObjectStore) -> None:
    """A change made while the loop runs comes with the next poll; state is saved per entity."""
    ctx = FakeSourceContext(qb, store)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_changes, ctx, {"entities": "Customer,Invoice", "interval": 0.01,
                                         "initial-lookback": "1h"})
        await wait_until(lambda: len(ctx.events) == 3)
        await run_op("create", qb, store, entity="Invoice", record=_invoice("L-1"),
                     idempotency_key="l-1")
        await wait_until(lambda: len(ctx.events) == 4)
        ctx.stop()
    assert ctx.events[-1].attributes["entity"] == "Invoice"
    assert set(ctx.state) == {"Customer", "Invoice"}


async def test_a_dropped_webhook_is_caught_by_cdc(store: ObjectStore) -> None:
    """The webhook delivery is lost; the changes source still delivers the new customer."""
    delivered: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        delivered.append(request)
        return httpx.Response(200)

    app = create_app(refresh_token=SEED_REFRESH_TOKEN, webhook_url="http://splice.test/hooks",
                     webhook_transport=httpx.MockTransport(receiver), faults={"drop_webhooks": 1})
    state: dict[str, Any] = {}
    async with connect(app, store) as qb:
        # The watermark after the demo customers; then a change whose webhook gets lost.
        await poll_entity(FakeSourceContext(qb, store), qb, "Customer", state, datetime.now(UTC), 3600)
        created = await run_op("create", qb, store, entity="Customer",
                               record={"DisplayName": "Missed Hook"}, idempotency_key="missed")
        assert await app.state.emulator.webhooks.flush() == 0
        ctx = FakeSourceContext(qb, store)
        assert await poll_entity(ctx, qb, "Customer", state, datetime.now(UTC), 3600)
    assert delivered == [] and app.state.emulator.webhooks.dropped == 1
    assert [e.attributes["entityId"] for e in ctx.events] == [created["Id"]]

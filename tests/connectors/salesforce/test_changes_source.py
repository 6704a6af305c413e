"""``salesforce.changes``: watermark, overlap window, de-duplication, restart without loss."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import anyio
import pytest

from connectors.salesforce.emulator.ids import parse_any_datetime
from connectors.salesforce.sources import CHANGES
from runtime.testing import typed_call

pytestmark = pytest.mark.anyio

run_changes = typed_call(CHANGES)

PARAMS = {"object": "Opportunity", "fields": ["Name", "StageName", "Amount"], "interval": 0,
          "overlap": "2m", "batch-size": 4, "where": "StageName = 'Closed Won'"}


def _opp(org: Any, name: str, stage: str = "Closed Won", **kw: Any) -> dict[str, Any]:
    return org.create("Opportunity", {"Name": name, "StageName": stage, "CloseDate": "2026-03-31"}, **kw)


async def test_polls_deliver_each_change_once(app: Any, client: Any, store: Any, source_context: Any) -> None:
    """Filtered records arrive once across polls; an update arrives again; nothing else repeats."""
    org = app.state.emulator.org
    won = [_opp(org, f"Won {i}") for i in range(11)]
    _opp(org, "Lost", stage="Closed Lost")
    ctx = source_context(client, store, polls=4)

    async def between(poll: int) -> None:
        if poll == 1:
            org.update("Opportunity", won[3]["Id"], {"Amount": 99})
        if poll == 2:
            _opp(org, "Late")

    ctx.on_sleep = between
    await run_changes(ctx, dict(PARAMS))
    names = [e.payload["Name"] for e in ctx.events]
    assert Counter(names) == Counter([f"Won {i}" for i in range(11)] + ["Won 3", "Late"])
    assert len({e.id for e in ctx.events}) == len(ctx.events)
    assert ctx.events[0].attributes["object"] == "Opportunity"
    assert ctx.state["watermark"] == org.find("Opportunity", ctx.events[-1].payload["Id"])["SystemModstamp"]
    assert len(ctx.saved) >= 4  # saved after every batch of 4, never before


async def test_late_commit_inside_overlap_is_caught(app: Any, client: Any, store: Any, source_context: Any) -> None:
    """A row committed after a poll but stamped before its watermark still arrives, once."""
    org = app.state.emulator.org
    _opp(org, "First")
    ctx = source_context(client, store, polls=3)

    async def between(poll: int) -> None:
        if poll == 1:
            watermark = parse_any_datetime(ctx.state["watermark"])
            _opp(org, "Long transaction", stamp=watermark - timedelta(seconds=30))

    ctx.on_sleep = between
    await run_changes(ctx, dict(PARAMS))
    assert [e.payload["Name"] for e in ctx.events] == ["First", "Long transaction"]


async def test_restart_resumes_without_loss_or_repeats(app: Any, client: Any, store: Any,
                                                       source_context: Any) -> None:
    """A failed event holds the watermark; after a restart it arrives, handled ones do not."""
    org = app.state.emulator.org
    records = [_opp(org, f"Won {i}") for i in range(9)]
    failing = f"{records[5]['Id']}@{records[5]['SystemModstamp']}"
    first = source_context(client, store, polls=1, fail={failing: 1})
    await run_changes(first, dict(PARAMS))
    assert [e.payload["Name"] for e in first.events] == [f"Won {i}" for i in range(9) if i != 5]
    held = parse_any_datetime(first.state["watermark"])
    assert held <= parse_any_datetime(records[5]["SystemModstamp"])
    _opp(org, "While down")
    second = source_context(client, store, polls=2, state=first.state)
    await run_changes(second, dict(PARAMS))
    assert [e.payload["Name"] for e in second.events] == ["Won 5", "While down"]


async def test_default_fields_come_from_describe(app: Any, client: Any, store: Any, source_context: Any) -> None:
    """Without fields every field of the object is selected, including custom ones."""
    org = app.state.emulator.org
    org.create("Account", {"Name": "Acme", "QB_Customer_Id__c": "58"})
    ctx = source_context(client, store, polls=1)
    await run_changes(ctx, {"object": "Account", "interval": 0, "overlap": 60, "batch-size": 10})
    assert ctx.events[0].payload["QB_Customer_Id__c"] == "58" and "BillingCity" in ctx.events[0].payload


async def test_batches_of_one_poll_overlap_and_the_watermark_moves_in_order(
        app: Any, client: Any, store: Any, source_context: Any) -> None:
    """A poll of 12 changes in batches of 4: the second batch is handed over while the first still
    runs (a burst is not handled in waves of one batch), and the watermark saved after each batch
    only ever moves forward, over batches whose every earlier batch is done."""
    org = app.state.emulator.org
    for i in range(12):
        _opp(org, f"Burst {i}")
    ctx = source_context(client, store, polls=1)
    second_batch = anyio.Event()
    handed: list[int] = []
    handle_many = ctx.handle_many

    async def overlapping(events: Any) -> Any:
        batch = list(events)
        handed.append(len(batch))
        if len(handed) == 2:
            second_batch.set()
        if len(handed) == 1:
            await second_batch.wait()  # the first batch ends only once the second is under way
        return await handle_many(batch)

    ctx.handle_many = overlapping
    with anyio.fail_after(10):
        await run_changes(ctx, dict(PARAMS))
    assert handed == [4, 4, 4]
    assert Counter(e.payload["Name"] for e in ctx.events) == Counter(f"Burst {i}" for i in range(12))
    marks = [parse_any_datetime(s["watermark"]) for s in ctx.saved if s.get("watermark")]
    assert marks == sorted(marks) and len(marks) >= 3
    last = max((r for r in org.records["Opportunity"].values() if r["Name"].startswith("Burst ")),
               key=lambda r: r["SystemModstamp"])
    assert ctx.state["watermark"] == last["SystemModstamp"]

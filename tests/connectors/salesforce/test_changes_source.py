"""``salesforce.changes``: watermark, overlap window, de-duplication, restart without loss."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

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

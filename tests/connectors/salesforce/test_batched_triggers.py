"""What the triggers cost: ``salesforce.change-events`` with ``fetch-records`` reads the records
behind a batch of events with one query per 200 ids, not one per event; a poll is one query."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from connectors.salesforce.cdc import CHANGE_EVENTS
from connectors.salesforce.emulator import create_app
from connectors.salesforce.sources import CHANGES
from runtime.testing import typed_call

pytestmark = pytest.mark.anyio

run_change_events = typed_call(CHANGE_EVENTS)
run_changes = typed_call(CHANGES)


class PathLog:
    """The emulator app, noting the method and path of every request it serves."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)

    def queries(self) -> int:
        """SOQL queries and their further pages served so far."""
        return sum(1 for _, path in self.seen if "/query" in path)


@pytest.fixture
def app() -> PathLog:
    """The emulator (pages of 2,000 rows), its requests logged."""
    return PathLog(create_app(page_size=2000, long_poll_timeout=0.2, bulk_polls=1))


async def test_fetching_the_records_of_250_change_events_takes_two_queries(
        app: PathLog, client: Any, store: Any, source_context: Any) -> None:
    """250 retained events, their records fetched: one query per 200 ids."""
    org = app.state.emulator.org
    for i in range(250):
        org.create("Account", {"Name": f"Acct {i:03d}"}, origin="crm-user")
    ctx = source_context(client, store, stop_after=250)
    params = {"object": "Account", "fields": ["Name"], "start": "retained", "fetch-records": True,
              "overlap": "1m", "fallback-interval": 0, "retry-stream-after": 0, "retry-delay": 0}
    with anyio.fail_after(20):
        await run_change_events(ctx, params)
    assert sorted(e.payload["Name"] for e in ctx.events) == [f"Acct {i:03d}" for i in range(250)]
    assert app.queries() == 2


async def test_a_poll_is_one_query(app: PathLog, client: Any, store: Any, source_context: Any) -> None:
    """The polling trigger reads every change since its watermark with one query (and its pages)."""
    org = app.state.emulator.org
    for i in range(30):
        org.create("Account", {"Name": f"Acct {i:02d}"})
    ctx = source_context(client, store, polls=1)
    await run_changes(ctx, {"object": "Account", "fields": ["Name"], "interval": 0, "batch-size": 10})
    assert len(ctx.events) == 30 and app.queries() == 1

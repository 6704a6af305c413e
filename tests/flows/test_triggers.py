"""opportunity-to-invoice under its real trigger: Change Data Capture in real time, and never a
second invoice for one opportunity, however often and by whichever path its changes arrive."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runtime.store.sourcestate import SourceStateStore
from runtime.testing import wait_until
from tests.support.flows import Integration

pytestmark = pytest.mark.anyio

FAST = {"TRIGGERS_FALLBACK_INTERVAL": "100ms", "TRIGGERS_RETRY_STREAM_AFTER": "300ms"}


async def trigger_caught_up(it: Integration) -> bool:
    """The change-event trigger's saved replay id covers the newest Opportunity change event."""
    newest = max(e["replayId"] for e in it.org.events if e["channel"] == "/data/OpportunityChangeEvent")
    state = await SourceStateStore(it.store).load("opportunity-to-invoice", "salesforce.change-events")
    return int((state or {}).get("replayId") or 0) >= newest


def invoices_of(it: Integration, opp: str) -> list[dict[str, Any]]:
    note = f"Salesforce Opportunity {opp}"
    return [i for i in it.company.tables["Invoice"].values() if i.get("PrivateNote") == note]


@pytest.mark.splice(environ=FAST, emulator_options={"salesforce": {"long_poll_timeout": 0.2}})
async def test_closed_won_is_invoiced_in_real_time_once(integration: Integration) -> None:
    it = integration
    account = it.account("Streamed Ltd")
    product = it.product("Streamed service", 120)
    opp = it.opportunity(account, [{"product": product, "Quantity": 2}], stage="Prospecting")
    emulator = it.sf_app.state.emulator

    def subscribed() -> bool:
        return any(c["subscriptions"] for c in emulator.streaming_clients.values())

    async with anyio.create_task_group() as tg:
        tg.start_soon(it.runtime.run_triggers)
        await wait_until(subscribed, within=15)
        it.org.update("Opportunity", opp, {"StageName": "Closed Won"})
        await wait_until(lambda: bool(it.record("Opportunity", opp)["QuickBooks_Invoice_Id__c"]), within=15)
        # Re-opened, closed again and edited: still one invoice, updated while unpaid.
        it.org.update("Opportunity", opp, {"StageName": "Negotiation/Review"})
        it.org.update("Opportunity", opp, {"StageName": "Closed Won"})
        line = next(li for li in it.org.records["OpportunityLineItem"].values() if li["OpportunityId"] == opp)
        it.org.update("OpportunityLineItem", line["Id"], {"Quantity": 4})
        it.org.update("Opportunity", opp, {"NextStep": "Deliver the extra days"})
        await wait_until(lambda: [str(i["TotalAmt"]) for i in invoices_of(it, opp)] == ["480.00"], within=15)
        # Every change event so far (the flow's own write-backs too) handled: nothing left that
        # could invoice the opportunity a second time.
        await wait_until(lambda: trigger_caught_up(it), within=15,
                         what="the trigger to handle every change event")
        it.runtime.request_stop()
    assert len(invoices_of(it, opp)) == 1
    assert it.record("Account", account)["QB_Customer_Id__c"]

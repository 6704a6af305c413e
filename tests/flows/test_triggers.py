"""opportunity-to-invoice under its real trigger: Change Data Capture in real time, and never a
second invoice for one opportunity, however often and by whichever path its changes arrive."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from connectors.salesforce.soql import parse_datetime
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


def executions(it: Integration, flow: str) -> float:
    """How many executions of ``flow`` completed (the runtime's own metrics)."""
    value = it.runtime.resources.metrics.registry.get_sample_value(
        "splice_executions_total", {"flow": flow, "outcome": "completed"})
    return value or 0.0


@pytest.mark.splice(environ={**FAST, "RECONCILIATION_REPAIR": "false",
                             "RECONCILIATION_BULK_POLL_INTERVAL": "10ms"},
                    emulator_options={"salesforce": {"faults": {"streaming_unavailable": True}}})
async def test_polling_skips_the_flows_own_write_backs_as_the_stream_does(
        integration: Integration) -> None:
    """With the change-event stream unavailable the trigger polls. The flow's write-back of the
    invoice link moves the opportunity's SystemModstamp, yet it does not run the flow again (on the
    stream its change event is skipped by origin); a change somebody else makes afterwards does."""
    it = integration
    account = it.account("Polled Ltd")
    product = it.product("Polled service", 120)
    opp = it.opportunity(account, [{"product": product, "Quantity": 2}], stage="Prospecting")

    async def polled_past(record_id: str) -> bool:
        """The trigger's watermark has reached the record's latest SystemModstamp."""
        stamp = it.record("Opportunity", record_id)["SystemModstamp"]
        state = await SourceStateStore(it.store).load("opportunity-to-invoice", "salesforce.change-events")
        return bool(state and state.get("watermark")) and (
            parse_datetime(state["watermark"]) >= parse_datetime(stamp))

    async with anyio.create_task_group() as tg:
        tg.start_soon(it.runtime.run_triggers)
        it.org.update("Opportunity", opp, {"StageName": "Closed Won"})
        await wait_until(lambda: bool(it.record("Opportunity", opp)["QuickBooks_Invoice_Id__c"]), within=15)
        # The write-back (invoice id, number, link) is polled too, and skipped.
        await wait_until(lambda: polled_past(opp), within=15, what="the write-back to be polled")
        assert executions(it, "opportunity-to-invoice") == 1

        line = next(li for li in it.org.records["OpportunityLineItem"].values() if li["OpportunityId"] == opp)
        it.org.update("OpportunityLineItem", line["Id"], {"Quantity": 3})
        await wait_until(lambda: [str(i["TotalAmt"]) for i in invoices_of(it, opp)] == ["360.00"], within=15)
        await wait_until(lambda: polled_past(opp), within=15, what="the edit to be polled")
        it.runtime.request_stop()
    assert executions(it, "opportunity-to-invoice") == 2
    assert len(invoices_of(it, opp)) == 1

"""opportunity-to-invoice under its real trigger: Change Data Capture in real time, and never a
second invoice for one opportunity, however often and by whichever path its changes arrive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

from tests.support.flows import Integration, open_integration

pytestmark = pytest.mark.anyio

FAST = {"TRIGGERS_FALLBACK_INTERVAL": "100ms", "TRIGGERS_RETRY_STREAM_AFTER": "300ms"}


async def until(condition: Callable[[], bool], limit: float = 15) -> None:
    """Wait until ``condition()`` holds, checking every 50 ms, at most ``limit`` seconds."""
    for _ in range(int(limit / 0.05)):
        if condition():
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"not reached within {limit} s")


def invoices_of(it: Integration, opp: str) -> list[dict[str, Any]]:
    note = f"Salesforce Opportunity {opp}"
    return [i for i in it.company.tables["Invoice"].values() if i.get("PrivateNote") == note]


async def test_closed_won_is_invoiced_in_real_time_once() -> None:
    async with open_integration(FAST, salesforce_options={"long_poll_timeout": 0.2}) as it:
        account = it.account("Streamed Ltd")
        product = it.product("Streamed service", 120)
        opp = it.opportunity(account, [{"product": product, "Quantity": 2}], stage="Prospecting")
        emulator = it.sf_app.state.emulator

        def subscribed() -> bool:
            return any(c["subscriptions"] for c in emulator.streaming_clients.values())

        async with anyio.create_task_group() as tg:
            tg.start_soon(it.runtime.run_triggers)
            await until(subscribed)
            it.org.update("Opportunity", opp, {"StageName": "Closed Won"})
            await until(lambda: bool(it.record("Opportunity", opp)["QuickBooks_Invoice_Id__c"]))
            # Re-opened, closed again and edited: still one invoice, updated while unpaid.
            it.org.update("Opportunity", opp, {"StageName": "Negotiation/Review"})
            it.org.update("Opportunity", opp, {"StageName": "Closed Won"})
            line = next(li for li in it.org.records["OpportunityLineItem"].values() if li["OpportunityId"] == opp)
            it.org.update("OpportunityLineItem", line["Id"], {"Quantity": 4})
            it.org.update("Opportunity", opp, {"NextStep": "Deliver the extra days"})
            await until(lambda: [str(i["TotalAmt"]) for i in invoices_of(it, opp)] == ["480.00"])
            await anyio.sleep(1.0)  # more stream events and polls: nothing may be invoiced twice
            it.runtime.request_stop()
        assert len(invoices_of(it, opp)) == 1
        assert it.record("Account", account)["QB_Customer_Id__c"]

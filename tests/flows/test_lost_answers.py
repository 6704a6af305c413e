"""A create whose answer is lost makes one record, not two, even when QuickBooks forgets requestids.

The emulator commits each invoice create and then loses the answer (a 502 from the gateway, or a
connection dropped mid-answer), and remembers no ``requestid``: a blind repeat of the create would
make a second invoice. The connector looks the invoice up by its DocNumber before sending again.
"""

from __future__ import annotations

import logging

import pytest

from tests.support.flows import Integration

pytestmark = pytest.mark.anyio


def _seed(it: Integration, count: int) -> list[str]:
    """``count`` won opportunities of one account, one product line each."""
    account = it.account("Lost Answer Traders")
    product = it.product("Support Plan", 480, StockKeepingUnit="SUP-480")
    return [it.opportunity(account, [{"product": product, "Quantity": n + 1, "UnitPrice": 480}],
                           name=f"Deal {n}") for n in range(count)]


@pytest.mark.parametrize("lost_answer", ["502", "reset"])
async def test_three_lost_invoice_answers_make_three_invoices_linked_back(
        integration: Integration, caplog: pytest.LogCaptureFixture, lost_answer: str) -> None:
    """3 of 3 lost answers after commit, requestids forgotten: one invoice each, linked, logged."""
    it = integration
    opps = _seed(it, 3)
    faults = it.qb_app.state.emulator.faults
    faults.update({"forget_request_ids": True, "lose_answers": 3, "lose_answers_entity": "Invoice",
                   "lost_answer": lost_answer})
    with caplog.at_level(logging.INFO):
        for opp in opps:
            outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
            assert outcome.status == "completed", outcome.error
    assert faults.lose_answers == 0, "every invoice create lost its answer"
    invoices = it.table("Invoice")
    by_note = {inv["PrivateNote"]: inv for inv in invoices}
    assert len(invoices) == 3 == len(by_note), [inv["DocNumber"] for inv in invoices]
    for opp in opps:
        invoice = by_note[f"Salesforce Opportunity {opp}"]
        assert invoice["DocNumber"] == "SF-" + opp[:15]
        written = it.record("Opportunity", opp)
        assert written["QuickBooks_Invoice_Id__c"] == invoice["Id"]
        assert written["QuickBooks_Invoice_Number__c"] == invoice["DocNumber"]
        [found] = [r for r in caplog.records if r.levelno == logging.WARNING
                   and "answer was lost" in r.getMessage() and f"DocNumber SF-{opp[:15]}" in r.getMessage()]
        assert "Invoice" in found.getMessage()

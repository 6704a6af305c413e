"""Transaction type per deal: Invoice (default), Sales Receipt (paid at the sale) or Estimate
(at the estimate stages, invoiced from when won), chosen by QuickBooks_Transaction_Type__c."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from runtime.testing import wait_until
from tests.support.flows import Integration, open_integration

pytestmark = pytest.mark.anyio
FAST = {"TRIGGERS_FALLBACK_INTERVAL": "100ms", "TRIGGERS_RETRY_STREAM_AFTER": "300ms"}


def seed_deal(it: Integration, kind: str | None, *, stage: str = "Closed Won") -> str:
    """An opportunity of two lines (1,649.50) of the given transaction type, at ``stage``."""
    account = it.account("Harbor Bikes", BillingCity="Portland", Billing_Email__c="ap@harbor.example")
    bike = it.product("Cargo Bike", 1499.5, ProductCode="BIKE-1", Family="Hardware")
    fitting = it.product("Fitting", 75, ProductCode="FIT-1", Family="Services")
    opp = it.opportunity(account, [{"product": bike, "Quantity": 1},
                                   {"product": fitting, "Quantity": 2}], stage=stage)
    if kind is not None:
        it.org.update("Opportunity", opp, {"QuickBooks_Transaction_Type__c": kind})
    return opp


async def test_a_deal_without_a_type_is_invoiced_as_before(integration: Integration) -> None:
    it = integration
    opp = seed_deal(it, None)
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    [invoice] = it.table("Invoice")
    assert invoice["TotalAmt"] == Decimal("1649.50") and invoice["LinkedTxn"] == []
    assert it.table("SalesReceipt") == [] and it.table("Estimate") == []
    written = it.record("Opportunity", opp)
    assert written["QuickBooks_Invoice_Id__c"] == invoice["Id"]
    assert written["Payment_Status__c"] == "Unpaid" and written["QuickBooks_Estimate_Id__c"] is None


async def test_a_sales_receipt_deal_is_paid_at_once(integration: Integration) -> None:
    """A SalesReceipt (no invoice), once however often the event comes; the opportunity is Paid."""
    it = integration
    opp = seed_deal(it, "Sales Receipt")
    for _ in range(2):
        outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
        assert outcome.status == "completed", outcome.error
    assert it.table("Invoice") == []
    [receipt] = it.table("SalesReceipt")
    assert receipt["DocNumber"] == "SF-" + opp[:15]
    assert receipt["TotalAmt"] == Decimal("1649.50") and receipt["Balance"] == 0
    assert receipt["DepositToAccountRef"]["name"] == "Undeposited Funds"
    assert "DueDate" not in receipt and "SalesTermRef" not in receipt
    written = it.record("Opportunity", opp)
    assert written["QuickBooks_Invoice_Id__c"] == receipt["Id"]
    assert written["QuickBooks_Invoice_Number__c"] == receipt["DocNumber"]
    assert written["QuickBooks_Invoice_Link__c"].endswith("/app/salesreceipt?txnId=" + receipt["Id"])
    assert (written["Payment_Status__c"], written["Amount_Paid__c"], written["Balance_Due__c"]) == \
        ("Paid", 1649.5, 0)


async def test_an_estimate_deal_gets_an_estimate_then_an_invoice_from_it(integration: Integration) -> None:
    """At an estimate stage: a Pending estimate, updated while pending, written back. Won: the
    invoice is made from the estimate (LinkedTxn), which QuickBooks closes; re-delivery of either
    event makes nothing more."""
    it = integration
    opp = seed_deal(it, "Estimate", stage="Proposal/Price Quote")
    for _ in range(2):
        outcome = await it.run("opportunity-to-estimate", it.record("Opportunity", opp))
        assert outcome.status == "completed", outcome.error
    [estimate] = it.table("Estimate")
    assert estimate["TxnStatus"] == "Pending" and estimate["TotalAmt"] == Decimal("1649.50")
    assert estimate["DocNumber"] == "SF-" + opp[:15] and estimate["ExpirationDate"] > estimate["TxnDate"]
    assert it.table("Invoice") == []
    written = it.record("Opportunity", opp)
    assert written["QuickBooks_Estimate_Id__c"] == estimate["Id"]
    assert written["QuickBooks_Estimate_Number__c"] == estimate["DocNumber"]
    assert written["QuickBooks_Invoice_Id__c"] is None and written["Payment_Status__c"] is None

    fitting = next(li for li in it.org.records["OpportunityLineItem"].values()
                   if li["OpportunityId"] == opp and li["SortOrder"] == 2)
    it.org.update("OpportunityLineItem", fitting["Id"], {"Quantity": 3})
    it.org.update("Opportunity", opp, {"StageName": "Negotiation/Review"})
    outcome = await it.run("opportunity-to-estimate", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    [updated] = it.table("Estimate")
    assert updated["Id"] == estimate["Id"] and updated["TotalAmt"] == Decimal("1724.50")

    it.org.update("Opportunity", opp, {"StageName": "Closed Won"})
    for _ in range(2):
        outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
        assert outcome.status == "completed", outcome.error
    [invoice] = it.table("Invoice")
    assert invoice["LinkedTxn"] == [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]
    assert invoice["TotalAmt"] == Decimal("1724.50")
    [closed] = it.table("Estimate")
    assert closed["TxnStatus"] == "Closed"
    assert closed["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    written = it.record("Opportunity", opp)
    assert written["QuickBooks_Invoice_Id__c"] == invoice["Id"]
    assert written["QuickBooks_Estimate_Id__c"] == estimate["Id"]
    assert written["Payment_Status__c"] == "Unpaid"


async def test_an_estimate_deal_outside_the_estimate_stages_has_none(integration: Integration) -> None:
    it = integration
    opp = seed_deal(it, "Estimate", stage="Qualification")
    outcome = await it.run("opportunity-to-estimate", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    assert it.table("Estimate") == []


async def test_a_closed_estimate_is_not_written_again(integration: Integration) -> None:
    """Once invoiced (Closed), a late estimate-stage event changes nothing in QuickBooks."""
    it = integration
    opp = seed_deal(it, "Estimate", stage="Proposal/Price Quote")
    early = it.record("Opportunity", opp)
    assert (await it.run("opportunity-to-estimate", early)).status == "completed"
    it.org.update("Opportunity", opp, {"StageName": "Closed Won"})
    assert (await it.run("opportunity-to-invoice", it.record("Opportunity", opp))).status == "completed"
    [closed] = it.table("Estimate")
    it.org.update("Opportunity", opp, {"StageName": "Negotiation/Review"})
    assert (await it.run("opportunity-to-estimate", it.record("Opportunity", opp))).status == "completed"
    [still] = it.table("Estimate")
    assert still["SyncToken"] == closed["SyncToken"] and still["TxnStatus"] == "Closed"
    assert len(it.table("Invoice")) == 1


async def test_the_reconciliation_repair_makes_a_sales_receipt_and_then_finds_it_in_sync(
        integration: Integration, reports_dir: Path) -> None:
    """A won Sales Receipt deal the trigger missed is made a SalesReceipt by the repair (its run
    knows only the Id); the next night it is in sync: no finding."""
    it = integration
    opp = seed_deal(it, "Sales Receipt")
    window = {"from": "2026-03-01", "to": "2026-04-30"}
    outcome = await it.run("nightly-reconciliation", {**window, "repair": True})
    assert outcome.status == "completed", outcome.error
    assert it.table("Invoice") == [] and len(it.table("SalesReceipt")) == 1
    assert it.record("Opportunity", opp)["Payment_Status__c"] == "Paid"
    again = await it.run("nightly-reconciliation", {**window, "repair": False})
    assert again.status == "completed", again.error
    report = reports_dir / f"reconciliation-{window['from']}-to-{window['to']}"
    summary = json.loads(report.with_suffix(".json").read_text())
    assert summary["checked"] == 1 and summary["findingsCount"] == 0
    assert report.with_suffix(".jsonl").read_text() == ""
    # Marked Unpaid by hand: the repair writes it Paid again from its receipt (not "Deleted": it
    # has no invoice whose payments could be read).
    it.org.update("Opportunity", opp, {"Payment_Status__c": "Unpaid", "Amount_Paid__c": 0})
    repaired = await it.run("nightly-reconciliation", {**window, "repair": True})
    assert repaired.status == "completed", repaired.error
    written = it.record("Opportunity", opp)
    assert (written["Payment_Status__c"], written["Amount_Paid__c"]) == ("Paid", 1649.5)
    assert len(it.table("SalesReceipt")) == 1 and it.table("Invoice") == []


async def test_without_the_transaction_type_field_every_won_deal_is_invoiced(anyio_backend: str) -> None:
    """salesforce.fields.transaction-type empty (an org without the picklist): a deal marked Sales
    Receipt is invoiced, and no estimate is made at an estimate stage."""
    async with open_integration({"SALESFORCE_FIELDS_TRANSACTION_TYPE": ""}) as it:
        opp = seed_deal(it, "Sales Receipt")
        outcome = await it.run("opportunity-to-invoice", {"Id": opp})
        assert outcome.status == "completed", outcome.error
        [invoice] = it.table("Invoice")
        assert it.record("Opportunity", opp)["QuickBooks_Invoice_Id__c"] == invoice["Id"]
        assert it.table("SalesReceipt") == []
        early = seed_deal(it, "Estimate", stage="Proposal/Price Quote")
        outcome = await it.run("opportunity-to-estimate", it.record("Opportunity", early))
        assert outcome.status == "completed", outcome.error
        assert it.table("Estimate") == []


@pytest.mark.splice(environ=FAST, emulator_options={"salesforce": {"long_poll_timeout": 0.2}})
async def test_under_the_real_triggers_an_estimate_deal_is_estimated_then_invoiced_from_it(
        integration: Integration) -> None:
    """Change Data Capture: the deal moved to an estimate stage gets its estimate, then won, its
    invoice linked to the estimate, which is Closed; one of each."""
    it = integration
    opp = seed_deal(it, "Estimate", stage="Qualification")
    emulator = it.sf_app.state.emulator

    def subscribed() -> bool:
        return any(len(c["subscriptions"]) >= 1 for c in emulator.streaming_clients.values())

    async with anyio.create_task_group() as tg:
        tg.start_soon(it.runtime.run_triggers)
        await wait_until(subscribed, within=15)
        it.org.update("Opportunity", opp, {"StageName": "Proposal/Price Quote"})
        await wait_until(lambda: bool(it.record("Opportunity", opp)["QuickBooks_Estimate_Id__c"]), within=15,
                         what="the estimate's id written back")
        it.org.update("Opportunity", opp, {"StageName": "Closed Won"})
        await wait_until(lambda: bool(it.record("Opportunity", opp)["QuickBooks_Invoice_Id__c"]), within=15,
                         what="the invoice's id written back")
        it.runtime.request_stop()
    [estimate] = it.table("Estimate")
    [invoice] = it.table("Invoice")
    assert invoice["LinkedTxn"] == [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]
    assert estimate["TxnStatus"] == "Closed"


async def test_a_voided_or_deleted_sales_receipt_reaches_its_opportunity(integration: Integration) -> None:
    """A SalesReceipt event (webhook or CDC) writes the receipt's state: Paid on its date, then
    Voided once voided in QuickBooks, Deleted once deleted."""
    it = integration
    opp = seed_deal(it, "Sales Receipt")
    assert (await it.run("opportunity-to-invoice", it.record("Opportunity", opp))).status == "completed"
    [receipt] = it.table("SalesReceipt")

    async def event(operation: str) -> None:
        outcome = await it.run("payment-to-salesforce", {}, {"entity": "SalesReceipt",
                                                             "entityId": receipt["Id"], "operation": operation})
        assert outcome.status == "completed", outcome.error

    await event("Create")
    written = it.record("Opportunity", opp)
    assert (written["Payment_Status__c"], written["Last_Payment_Date__c"]) == ("Paid", receipt["TxnDate"])
    it.company.void("SalesReceipt", {"Id": receipt["Id"], "SyncToken": receipt["SyncToken"]})
    await event("Void")
    written = it.record("Opportunity", opp)
    assert (written["Payment_Status__c"], written["Amount_Paid__c"], written["Balance_Due__c"]) == ("Voided", 0, 0)
    voided = it.company.tables["SalesReceipt"][receipt["Id"]]
    it.company.delete("SalesReceipt", {"Id": voided["Id"], "SyncToken": voided["SyncToken"]})
    await event("Delete")
    written = it.record("Opportunity", opp)
    assert written["Payment_Status__c"] == "Deleted" and written["QuickBooks_Invoice_Link__c"] is None


async def voided_then_edited(it: Integration, transaction_type: str | None,
                             entity: str) -> tuple[str, dict[str, Any], str]:
    """A deal of ``transaction_type`` made into its ``entity``, voided in QuickBooks, then edited in
    Salesforce: the opportunity, the voided transaction and the note the sync wrote."""
    opp = seed_deal(it, transaction_type)
    assert (await it.run("opportunity-to-invoice", it.record("Opportunity", opp))).status == "completed"
    [made] = it.table(entity)
    it.company.void(entity, {"Id": made["Id"], "SyncToken": made["SyncToken"]})
    fitting = next(li for li in it.org.records["OpportunityLineItem"].values()
                   if li["OpportunityId"] == opp and li["SortOrder"] == 2)
    it.org.update("OpportunityLineItem", fitting["Id"], {"Quantity": 3})
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    return opp, made, str(it.record("Opportunity", opp)["QB_Sync_Error__c"])


async def test_messages_about_a_sales_receipt_deal_name_the_sales_receipt(integration: Integration) -> None:
    """A Sales Receipt deal whose receipt was voided, then deleted, in QuickBooks: the notes on the
    opportunity name a Sales Receipt, not an invoice (it never had one)."""
    it = integration
    opp, receipt, note = await voided_then_edited(it, "Sales Receipt", "SalesReceipt")
    assert note.startswith(f"Sales Receipt {receipt['DocNumber']} was voided in QuickBooks"), note
    assert "invoice" not in note.lower().replace("not invoiced", ""), note

    voided = it.company.tables["SalesReceipt"][receipt["Id"]]
    it.company.delete("SalesReceipt", {"Id": voided["Id"], "SyncToken": voided["SyncToken"]})
    outcome = await it.run("payment-to-salesforce", {}, {"entity": "SalesReceipt",
                                                         "entityId": receipt["Id"], "operation": "Delete"})
    assert outcome.status == "completed", outcome.error
    written = it.record("Opportunity", opp)
    assert written["Payment_Status__c"] == "Deleted"
    assert written["QB_Sync_Error__c"].startswith(f"Sales Receipt {receipt['Id']} was deleted in QuickBooks"), \
        written["QB_Sync_Error__c"]


async def test_messages_about_an_invoice_still_name_the_invoice(integration: Integration) -> None:
    """The same notes for an Invoice deal keep naming the invoice."""
    _, invoice, note = await voided_then_edited(integration, None, "Invoice")
    assert note.startswith(f"Invoice {invoice['DocNumber']} was voided in QuickBooks"), note

"""opportunity-to-invoice: a won opportunity becomes exactly one QuickBooks invoice, written back."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from tests.support.flows import Integration

pytestmark = pytest.mark.anyio


def seed_won(it: Integration, *, name: str = "O'Brien & Søn Ltd") -> tuple[str, str]:
    """An account with a billing address and an opportunity of three lines (one discounted)."""
    account = it.account(name, BillingStreet="1 Rue de l'Église\nBâtiment B", BillingCity="Zürich",
                         BillingPostalCode="8001", BillingCountry="Switzerland",
                         Billing_Email__c="billing@obrien.example")
    hours = it.product("Consulting Hours", 150, StockKeepingUnit="HRS-150", Family="Services")
    laptop = it.product("Laptop 14\"", 1299.99, ProductCode="LAP-14", Family="Hardware")
    cable = it.product("USB-C Cable", 9.95, Family="Hardware")
    opp = it.opportunity(account, [
        {"product": hours, "Quantity": 12.5, "UnitPrice": 150},
        {"product": laptop, "Quantity": 3, "UnitPrice": 1299.99, "Discount": 10},
        {"product": cable, "Quantity": 7, "UnitPrice": 9.95},
    ])
    return account, opp


async def test_won_opportunity_becomes_one_invoice(integration: Integration) -> None:
    it = integration
    account, opp = seed_won(it)
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    [invoice] = it.table("Invoice")
    [customer] = [c for c in it.table("Customer") if c["DisplayName"] == "O'Brien & Søn Ltd"]
    assert customer["BillAddr"]["City"] == "Zürich"
    assert customer["BillAddr"]["Line1"] == "1 Rue de l'Église"
    assert customer["PrimaryEmailAddr"]["Address"] == "billing@obrien.example"
    assert invoice["CustomerRef"]["value"] == customer["Id"]
    assert invoice["DocNumber"] == "SF-" + opp[:15]
    assert invoice["TxnDate"] == "2026-03-31" and invoice["DueDate"] == "2026-04-30"
    assert invoice["PrivateNote"] == f"Salesforce Opportunity {opp}"
    sales = [ln for ln in invoice["Line"] if ln["DetailType"] == "SalesItemLineDetail"]
    assert [ln["Amount"] for ln in sales] == [Decimal("1875.00"), Decimal("3899.97"), Decimal("69.65")]
    assert [ln["SalesItemLineDetail"]["TaxCodeRef"]["value"] for ln in sales] == ["NON", "TAX", "TAX"]
    [discount] = [ln for ln in invoice["Line"] if ln["DetailType"] == "DiscountLineDetail"]
    assert discount["Amount"] == Decimal("390.00")
    assert invoice["TotalAmt"] == Decimal(str(it.record("Opportunity", opp)["Amount"])) == Decimal("5454.62")
    items = {i["Name"]: i for i in it.table("Item")}
    assert items["Consulting Hours"]["Sku"] == "HRS-150" and items["Laptop 14\""]["Sku"] == "LAP-14"
    written = it.record("Opportunity", opp)
    assert written["QuickBooks_Invoice_Id__c"] == invoice["Id"]
    assert written["QuickBooks_Invoice_Number__c"] == invoice["DocNumber"]
    assert written["QuickBooks_Invoice_Link__c"].endswith("txnId=" + invoice["Id"])
    assert it.record("Account", account)["QB_Customer_Id__c"] == customer["Id"]


async def test_a_new_invoices_payment_state_is_written_with_its_link(integration: Integration) -> None:
    """Unpaid, nothing paid, the whole total due, as soon as the opportunity is linked: no Invoice
    event is needed (one handled before the link existed finds no opportunity, and left the
    status empty for good)."""
    it = integration
    _, opp = seed_won(it)
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    written = it.record("Opportunity", opp)
    assert (written["Payment_Status__c"], written["Amount_Paid__c"], written["Balance_Due__c"]) == \
        ("Unpaid", 0, 5454.62)


async def test_duplicate_delivery_and_reopen_make_no_second_invoice(integration: Integration) -> None:
    it = integration
    _, opp = seed_won(it)
    event = it.record("Opportunity", opp)
    for _ in range(2):
        assert (await it.run("opportunity-to-invoice", event)).status == "completed"
    it.org.update("Opportunity", opp, {"StageName": "Negotiation/Review"})
    assert (await it.run("opportunity-to-invoice", it.record("Opportunity", opp))).status == "completed"
    it.org.update("Opportunity", opp, {"StageName": "Closed Won"})
    assert (await it.run("opportunity-to-invoice", it.record("Opportunity", opp))).status == "completed"
    assert len(it.table("Invoice")) == 1
    assert len([c for c in it.table("Customer") if c["DisplayName"] == "O'Brien & Søn Ltd"]) == 1
    assert len([i for i in it.table("Item") if i["Name"] == "USB-C Cable"]) == 1


async def test_edits_update_the_unpaid_invoice_and_are_reported_once_paid(integration: Integration) -> None:
    it = integration
    _, opp = seed_won(it)
    await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    [invoice] = it.table("Invoice")
    cable_line = next(li for li in it.org.records["OpportunityLineItem"].values()
                      if li["OpportunityId"] == opp and li["SortOrder"] == 3)
    it.org.update("OpportunityLineItem", cable_line["Id"], {"Quantity": 10})
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    [updated] = it.table("Invoice")
    assert updated["Id"] == invoice["Id"]
    assert updated["TotalAmt"] == Decimal("5484.47")
    assert it.record("Opportunity", opp)["QB_Sync_Error__c"] is None

    it.company.create("Payment", {"CustomerRef": updated["CustomerRef"], "TotalAmt": Decimal("100.00"),
                                  "Line": [{"Amount": Decimal("100.00"), "LinkedTxn": [
                                      {"TxnId": updated["Id"], "TxnType": "Invoice"}]}]}, {})
    it.org.update("OpportunityLineItem", cable_line["Id"], {"Quantity": 1})
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    [kept] = it.table("Invoice")
    assert kept["TotalAmt"] == Decimal("5484.47") and kept["Balance"] == Decimal("5384.47")
    error = it.record("Opportunity", opp)["QB_Sync_Error__c"]
    assert error and "received payments" in error and kept["DocNumber"] in error


async def test_open_opportunity_is_not_invoiced(integration: Integration) -> None:
    it = integration
    account = it.account("Open Deals Inc")
    product = it.product("Widget", 5)
    opp = it.opportunity(account, [{"product": product, "Quantity": 1}], stage="Prospecting")
    assert (await it.run("opportunity-to-invoice", it.record("Opportunity", opp))).status == "completed"
    assert it.table("Invoice") == []


async def test_a_voided_invoice_is_never_written_again(integration: Integration) -> None:
    """An edit of an opportunity whose invoice was voided leaves the voided invoice as it is (total
    0, the void note kept) and is reported on the opportunity instead."""
    it = integration
    _, opp = seed_won(it)
    await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    [invoice] = it.table("Invoice")
    it.company.void("Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]})
    voided = dict(it.company.tables["Invoice"][invoice["Id"]])
    cable_line = next(li for li in it.org.records["OpportunityLineItem"].values()
                      if li["OpportunityId"] == opp and li["SortOrder"] == 3)
    it.org.update("OpportunityLineItem", cable_line["Id"], {"Quantity": 10})
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    [kept] = it.table("Invoice")
    assert kept["TotalAmt"] == Decimal("0") and kept["SyncToken"] == voided["SyncToken"]
    assert kept["PrivateNote"].startswith("Voided")
    written = it.record("Opportunity", opp)
    assert written["QuickBooks_Invoice_Id__c"] == invoice["Id"]
    note = written["QB_Sync_Error__c"]
    assert note and "voided" in note and invoice["DocNumber"] in note and "not invoiced" in note


async def test_an_opportunity_whose_invoice_was_deleted_is_not_invoiced_again_by_an_edit(
        integration: Integration) -> None:
    """Once QuickBooks deleted the invoice, an edit neither recreates it nor claims it was invoiced:
    the opportunity keeps the deleted invoice's number and says why (the nightly reconciliation
    invoices it again when its policy allows)."""
    it = integration
    _, opp = seed_won(it)
    await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    [invoice] = it.table("Invoice")
    it.company.delete("Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]})
    outcome = await it.run("payment-to-salesforce", {}, {"entity": "Invoice", "entityId": invoice["Id"],
                                                         "operation": "Delete"})
    assert outcome.status == "completed", outcome.error
    marked = it.record("Opportunity", opp)
    assert marked["Payment_Status__c"] == "Deleted" and marked["QuickBooks_Invoice_Link__c"] is None
    assert marked["QuickBooks_Invoice_Number__c"] == invoice["DocNumber"]
    assert "deleted" in marked["QB_Sync_Error__c"]

    it.org.update("Opportunity", opp, {"Description": "edited after the delete"})
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    assert it.table("Invoice") == []
    note = it.record("Opportunity", opp)["QB_Sync_Error__c"]
    assert note and "deleted" in note and invoice["DocNumber"] in note


async def test_a_won_opportunity_without_products_is_invoiced_for_its_amount(integration: Integration) -> None:
    """The default policy (invoice.without-products: amount-line): one line of the Amount on the
    configured item."""
    it = integration
    account = it.account("No Lines Ltd")
    opp = it.opportunity(account, [], name="Retainer")
    it.org.update("Opportunity", opp, {"Amount": 3878.95})
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    [invoice] = it.table("Invoice")
    assert invoice["TotalAmt"] == Decimal("3878.95")
    [line] = [ln for ln in invoice["Line"] if ln["DetailType"] == "SalesItemLineDetail"]
    item = it.company.tables["Item"][line["SalesItemLineDetail"]["ItemRef"]["value"]]
    assert item["Name"] == "Services" and line["Description"] == "Retainer"
    written = it.record("Opportunity", opp)
    assert written["QuickBooks_Invoice_Id__c"] == invoice["Id"] and written["QB_Sync_Error__c"] is None
    # A second delivery changes nothing.
    assert (await it.run("opportunity-to-invoice", it.record("Opportunity", opp))).status == "completed"
    assert len(it.table("Invoice")) == 1 and it.table("Invoice")[0]["SyncToken"] == invoice["SyncToken"]


@pytest.mark.splice(environ={"INVOICE_WITHOUT_PRODUCTS": "flag"})
async def test_a_won_opportunity_without_products_can_be_flagged_instead(
        integration: Integration, caplog: pytest.LogCaptureFixture) -> None:
    """invoice.without-products: flag writes why it was not invoiced on the opportunity, and logs
    it as a warning (not at debug level)."""
    it = integration
    opp = it.opportunity(it.account("Flagged Ltd"), [], name="Retainer")
    it.org.update("Opportunity", opp, {"Amount": 500})
    with caplog.at_level(logging.INFO):
        outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert any(r.levelno == logging.WARNING and opp in r.getMessage() and "no products" in r.getMessage()
               for r in caplog.records)
    assert outcome.status == "completed", outcome.error
    assert it.table("Invoice") == []
    note = it.record("Opportunity", opp)["QB_Sync_Error__c"]
    assert note and "no products" in note

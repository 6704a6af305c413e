"""The demo company is one company: what Salesforce says was invoiced is in QuickBooks."""

from __future__ import annotations

from decimal import Decimal

from connectors.quickbooks.emulator import create_app as create_quickbooks
from connectors.quickbooks.emulator.app import DEFAULT_REALM
from connectors.salesforce.emulator import create_app as create_salesforce
from connectors.salesforce.emulator.schema import STAGES


def test_salesforce_and_quickbooks_demo_data_agree() -> None:
    """Invoiced opportunities point at QuickBooks invoices with their number, total and balance;
    synced accounts at customers of the same name; products at items with the same SKU and price."""
    org = create_salesforce(demo=True).state.emulator.org
    company = create_quickbooks(demo=True).state.emulator.companies[DEFAULT_REALM]
    invoices = company.tables["Invoice"]
    customers = company.tables["Customer"]
    accounts = org.records["Account"]
    opportunities = list(org.records["Opportunity"].values())
    invoiced = [o for o in opportunities if o["QuickBooks_Invoice_Id__c"]]
    assert len(invoiced) == 8
    for opportunity in invoiced:
        invoice = invoices[opportunity["QuickBooks_Invoice_Id__c"]]
        assert invoice["DocNumber"] == opportunity["QuickBooks_Invoice_Number__c"]
        if opportunity["Payment_Status__c"] == "Voided":  # QuickBooks keeps a voided invoice at 0
            assert invoice["TotalAmt"] == 0 and invoice["PrivateNote"].startswith("Voided")
            assert Decimal(str(opportunity["Amount"])) > 0
        else:  # QuickBooks adds the sales tax it computes to what the opportunity bills
            tax = Decimal(str(invoice["TxnTaxDetail"]["TotalTax"]))
            assert Decimal(str(invoice["TotalAmt"])) == Decimal(str(opportunity["Amount"])) + tax
        assert Decimal(str(invoice["Balance"])) == Decimal(str(opportunity["Balance_Due__c"]))
        credited = Decimal(str(opportunity["Amount_Credited__c"] or 0))
        settled = Decimal(str(invoice["TotalAmt"])) - Decimal(str(invoice["Balance"]))
        assert Decimal(str(opportunity["Amount_Paid__c"])) + credited == settled
        account = accounts[opportunity["AccountId"]]
        assert invoice["CustomerRef"]["value"] == account["QB_Customer_Id__c"]
    for account in accounts.values():
        if account["QB_Customer_Id__c"]:
            assert customers[account["QB_Customer_Id__c"]]["DisplayName"] == account["Name"]
    items = {i.get("Sku"): i for i in company.tables["Item"].values()}
    books = {e["Product2Id"]: e["UnitPrice"] for e in org.records["PricebookEntry"].values()}
    for product in org.records["Product2"].values():
        item = items[product["ProductCode"]]
        assert item["Name"] == product["Name"]
        assert Decimal(str(item["UnitPrice"])) == Decimal(str(books[product["Id"]]))
    assert {t["Name"] for t in company.tables["Term"].values()} >= {"Net 30"}
    assert {"TAX", "NON"} <= set(company.tables["TaxCode"])


def test_the_demo_has_work_to_do_and_hard_names() -> None:
    """Every stage appears, some Closed Won opportunities wait for an invoice, and account names
    carry apostrophes and non-ASCII letters; the invoices are numbered as the flows number them."""
    org = create_salesforce(demo=True).state.emulator.org
    opportunities = list(org.records["Opportunity"].values())
    assert {o["StageName"] for o in opportunities} == set(STAGES)
    waiting = [o for o in opportunities if o["IsWon"] and not o["QuickBooks_Invoice_Id__c"]]
    assert len(waiting) >= 3
    names = [a["Name"] for a in org.records["Account"].values()]
    assert any("'" in n for n in names) and any(not n.isascii() for n in names)
    assert all(o["Amount"] for o in opportunities)
    # The edges of real books: a voided invoice, a taxed one, and a won opportunity without products.
    company = create_quickbooks(demo=True).state.emulator.companies[DEFAULT_REALM]
    taxed = [o["Name"] for o in opportunities if o["QuickBooks_Invoice_Id__c"]
             and company.tables["Invoice"][o["QuickBooks_Invoice_Id__c"]]["TxnTaxDetail"]["TotalTax"]]
    assert taxed == ["Acme Corp - Gadget order"]
    assert [o["Name"] for o in opportunities if o["Payment_Status__c"] == "Voided"] == [
        "Globex - Cancelled gadgets", "O'Brien Logistics - Cancelled install"]
    assert [o["Name"] for o in opportunities if o["IsWon"] and not o["HasOpportunityLineItem"]
            and not o["Bill_By_Milestone__c"]] == [
        "Initech - Consulting retainer"]
    for opportunity in opportunities:
        if opportunity["QuickBooks_Invoice_Number__c"]:
            assert opportunity["QuickBooks_Invoice_Number__c"] == "SF-" + opportunity["Id"][:15]
    plain = create_quickbooks().state.emulator.companies[DEFAULT_REALM]
    assert "Invoice" not in plain.tables or not plain.tables["Invoice"]


def test_the_demo_has_cancelled_deals_in_both_systems() -> None:
    """A lost opportunity whose unpaid invoice was voided, and one whose unpaid part a credit memo
    (numbered as the flows number it) settles: the opportunities say so, QuickBooks agrees."""
    org = create_salesforce(demo=True).state.emulator.org
    company = create_quickbooks(demo=True).state.emulator.companies[DEFAULT_REALM]
    cancelled = {o["Name"]: o for o in org.records["Opportunity"].values() if o["Cancellation_Status__c"]}
    assert {name: o["Cancellation_Status__c"] for name, o in cancelled.items()} == {
        "O'Brien Logistics - Cancelled install": "Cancelled - Voided",
        "Acme Corp - Returned installation": "Cancelled - Credited"}
    assert all(o["StageName"] == "Closed Lost" for o in cancelled.values())
    voided = company.tables["Invoice"][cancelled["O'Brien Logistics - Cancelled install"]["QuickBooks_Invoice_Id__c"]]
    assert voided["PrivateNote"].startswith("Voided") and not voided["LinkedTxn"]
    credited = cancelled["Acme Corp - Returned installation"]
    memo = company.tables["CreditMemo"][credited["QuickBooks_Credit_Memo_Id__c"]]
    assert memo["DocNumber"] == "SFC-" + credited["Id"][:15] and memo["RemainingCredit"] == 0
    assert Decimal(str(memo["TotalAmt"])) == Decimal(str(credited["Amount_Credited__c"])) == Decimal("550")
    assert company.tables["Invoice"][credited["QuickBooks_Invoice_Id__c"]]["Balance"] == 0
    # What a refund needs, when the refund policy is turned on.
    assert [a["Name"] for a in company.tables["Account"].values() if a["AccountType"] == "Bank"] == ["Checking"]
    assert "Check" in [m["Name"] for m in company.tables["PaymentMethod"].values()]

"""Demo data of a fresh emulated company: a small chart of accounts, terms, items, customers.

:func:`seed_company` is how every emulated company starts (tests rely on its ids). With
``demo=True`` (``splice serve`` in sandbox mode, ``splice sandbox quickbooks --option demo=true``)
:func:`seed_demo_company` adds the QuickBooks side of the Salesforce emulator's demo org: its
products as items (``Sku`` = Salesforce ``ProductCode``), the accounts already synced as customers,
the invoices (and payments) of the opportunities already invoiced, one of them voided, a vendor
whose name a Salesforce account has too, a Pending estimate and a won one (Closed, its invoice made
from it). Sandbox mode adds multi-currency and the euro customer (:mod:`.demo_currency`). The company turned automated sales tax on (8.25%, "San
Francisco") after its first invoices: the last demo invoice carries sales tax on its taxable lines
(TotalAmt = the opportunity's Amount + TotalTax), and so do the invoices the sync makes for taxable
products. The facts both emulators
share are written down in both demo modules, since neither package imports the other;
``tests/sandbox/test_demo.py`` checks that they agree.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from connectors.quickbooks.emulator.demo_headers import seed_demo_headers
from connectors.quickbooks.emulator.demo_projects import seed_demo_projects
from connectors.quickbooks.emulator.entities import Company
from connectors.quickbooks.emulator.salesforms import seed_payment_methods
from connectors.quickbooks.emulator.salestax import set_sales_tax

__all__ = ["DEMO_CANCELLATIONS", "DEMO_CUSTOMERS", "DEMO_ESTIMATES", "DEMO_INVOICES", "DEMO_ITEMS",
           "DEMO_SALES_TAX", "DEMO_VENDORS", "DEMO_WON_ESTIMATES", "seed_company",
           "seed_demo_cancellations", "seed_demo_company"]

#: (Name, Sku, Type, UnitPrice, taxable): the Salesforce demo products.
DEMO_ITEMS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("Widget", "WID-100", "NonInventory", "62.50", True),
    ("Gadget", "GAD-200", "NonInventory", "149.00", True),
    ("Sensor Kit", "SEN-300", "NonInventory", "310.00", True),
    ("Installation", "SVC-INST", "Service", "95.00", False),
    ("Support Plan", "SVC-SUP", "Service", "1200.00", False),
)

#: (expected Id, DisplayName, email, city, state, postal code): the Salesforce accounts already
#: synced (their ``QB_Customer_Id__c``).
DEMO_CUSTOMERS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("14", "Acme Corp", "ap@acme.example", "San Francisco", "CA", "94105"),
    ("15", "Globex", "billing@globex.example", "Springfield", "OR", "97477"),
    ("16", "O'Brien Logistics", "accounts@obrien.example", "Boston", "MA", "02210"),
)

#: (DisplayName, e-mail): vendors. "Pinewood Supplies" is also a Salesforce demo account's name: as
#: DisplayName is unique across customers, vendors and employees, its customer takes another.
DEMO_VENDORS: tuple[tuple[str, str], ...] = (
    ("Pinewood Supplies", "orders@pinewood-supplies.example"),
)

#: (Id, customer Id, opportunity Id, TxnDate, ((Sku, Qty), ...)): the Pending estimates of Estimate
#: deals not won yet ("Globex - Gadget refresh"), numbered as the flows number them; closing the
#: deal in Salesforce invoices it from its estimate.
DEMO_ESTIMATES: tuple[tuple[Any, ...], ...] = (
    ("44", "15", "006Rx000035ibEXIAY", "2026-11-16", (("GAD-200", 25),)),
)

#: (estimate Id, invoice Id, customer Id, opportunity Id, estimate TxnDate, invoice TxnDate,
#: ((Sku, Qty), ...)): Estimate deals already won ("Globex - Support onboarding"): the estimate
#: Closed, and the invoice made from it linked both ways through ``LinkedTxn``, as the flows and
#: QuickBooks leave them (estimate and invoice share the flows' DocNumber).
DEMO_WON_ESTIMATES: tuple[tuple[Any, ...], ...] = (
    ("45", "46", "15", "006Rx0000368Wg0IAE", "2026-11-09", "2026-11-24",
     (("SVC-INST", 8), ("SVC-SUP", 1))),
)

#: The automated sales tax rate (percent) the demo company turned on after its first invoices.
DEMO_SALES_TAX = "8.25"

#: (expected Id, DocNumber, customer Id, opportunity name, TxnDate, ((Sku, Qty), ...), paid):
#: the Closed Won opportunities already invoiced (their ``QuickBooks_Invoice_Id__c``); DocNumber is
#: "SF-" and the opportunity's 15-character Salesforce Id, as the flows number invoices. ``paid``
#: "void" is an invoice voided in QuickBooks (kept, total 0, PrivateNote "Voided - ..."), "taxed"
#: an unpaid invoice made once sales tax was on (its taxable lines carry DEMO_SALES_TAX).
DEMO_INVOICES: tuple[tuple[Any, ...], ...] = (
    ("22", "SF-006Rx000035eCml", "14", "Acme Corp - Widget rollout", "2026-02-12",
     (("WID-100", 40), ("SVC-INST", 4)), "2880.00"),
    ("23", "SF-006Rx000035hHV0", "15", "Globex - Plant sensors", "2026-05-04",
     (("SEN-300", 12), ("SVC-INST", 6)), "2000.00"),
    ("24", "SF-006Rx000035qVdj", "16", "O'Brien Logistics - Fleet gadgets", "2026-09-18",
     (("GAD-200", 20), ("SVC-SUP", 1)), "0"),
    ("25", "SF-006Rx000035wDp2", "15", "Globex - Cancelled gadgets", "2026-06-22",
     (("GAD-200", 10), ("SVC-INST", 3)), "void"),
    ("26", "SF-006Rx000035xynk", "14", "Acme Corp - Gadget order", "2026-10-05",
     (("GAD-200", 4), ("SVC-INST", 1)), "taxed"),
)


#: (expected Id, DocNumber, customer Id, opportunity name, TxnDate, ((Sku, Qty), ...), paid,
#: (credit memo Id, DocNumber) or None): the invoiced opportunities that were then lost
#: (Salesforce's DEMO_CANCELLATIONS). "void": the unpaid invoice voided; an amount: paid that much,
#: the rest credited by a credit memo ("SFC-" and the opportunity's 15-character Id) applied to it.
DEMO_CANCELLATIONS: tuple[tuple[Any, ...], ...] = (
    ("30", "SF-006Rx0000362oUh", "16", "O'Brien Logistics - Cancelled install", "2026-10-12",
     (("SVC-INST", 2),), "void", None),
    ("31", "SF-006Rx0000363gz3", "14", "Acme Corp - Returned installation", "2026-10-28",
     (("SVC-INST", 10),), "400.00", ("33", "SFC-006Rx0000363gz3")),
)


def seed_company(company: Company, *, customers: bool = True) -> None:
    """Fill a company the way a new QuickBooks sandbox company starts out (much smaller)."""
    accounts = {}
    for name, kind, sub in (("Services", "Income", "ServiceFeeIncome"),
                            ("Sales of Product Income", "Income", "SalesOfProductIncome"),
                            ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
                            ("Accounts Receivable (A/R)", "Accounts Receivable",
                             "AccountsReceivable"),
                            ("Cost of Goods Sold", "Cost of Goods Sold", "SuppliesMaterialsCogs")):
        accounts[name] = company.create("Account", {"Name": name, "AccountType": kind,
                                                    "AccountSubType": sub}, {})
    company.create("Term", {"Name": "Net 30", "DueDays": 30}, {})
    seed_payment_methods(company)
    company.create("Term", {"Name": "Due on receipt", "DueDays": 0}, {})
    for code, name, taxable in (("TAX", "Taxable", True), ("NON", "Non-Taxable", False)):
        company.tables["TaxCode"][code] = {
            "Id": code, "Name": name, "Description": name, "Active": True, "Taxable": taxable,
            "TaxGroup": False, "SyncToken": "0", "domain": "QBO", "sparse": False,
            "MetaData": {"CreateTime": company.now(), "LastUpdatedTime": company.now()}}
    now = company.now()
    meta = {"CreateTime": now, "LastUpdatedTime": now}
    company.tables["CompanyInfo"][company.realm_id] = {
        "Id": company.realm_id, "CompanyName": "Splice Sandbox Company", "LegalName":
        "Splice Sandbox Company", "Country": "USA", "SupportedLanguages": "en",
        "CompanyAddr": {"Line1": "123 Sierra Way", "City": "San Pablo", "Country": "USA",
                        "CountrySubDivisionCode": "CA", "PostalCode": "87999"},
        "FiscalYearStartMonth": "January", "SyncToken": "0", "domain": "QBO", "sparse": False,
        "MetaData": dict(meta)}
    company.tables["Preferences"]["1"] = {
        "Id": "1", "SyncToken": "0", "domain": "QBO", "sparse": False, "MetaData": dict(meta),
        "CurrencyPrefs": {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": "USD"}},
        "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": False},
        "AccountingInfoPrefs": {"TrackDepartments": False, "DepartmentTerminology": "Location",
                                "ClassTrackingPerTxn": False, "ClassTrackingPerTxnLine": False,
                                "CustomerTerminology": "Customers"},
        "SalesFormsPrefs": {"CustomTxnNumbers": True, "AllowDeposit": True,
                            "ETransactionPaymentEnabled": False, "CustomField": [
            {"CustomField": [{"Name": "SalesFormsPrefs.UseSalesCustom1", "Type": "BooleanType",
                              "BooleanValue": True},
                             {"Name": "SalesFormsPrefs.SalesCustomName1", "Type": "StringType",
                              "StringValue": "Opportunity"}]}]}}
    income = {"value": accounts["Services"]["Id"]}
    for name, price, sku in (("Services", "0", None), ("Hours", "75", "HRS-1"),
                             ("Consulting", "150", "CONS-1")):
        body = {"Name": name, "Type": "Service", "IncomeAccountRef": income,
                "UnitPrice": Decimal(price)}
        if sku:
            body["Sku"] = sku
        company.create("Item", body, {})
    if not customers:
        return
    for name, email in (("Amy's Bird Sanctuary", "birds@intuit.example"),
                        ("Bill's Windsurf Shop", "surf@intuit.example"),
                        ("Cool Cars", "cars@intuit.example")):
        company.create("Customer", {"DisplayName": name, "CompanyName": name,
                                    "PrimaryEmailAddr": {"Address": email}}, {})


def seed_demo_company(company: Company) -> None:
    """Add the demo company on top of :func:`seed_company`: customers, items, invoices, payments.

    Ids are assigned in order, so they are the ones the Salesforce demo records refer to.
    """
    for expected, name, email, city, state, postal in DEMO_CUSTOMERS:
        customer = company.create("Customer", {
            "DisplayName": name, "CompanyName": name, "PrimaryEmailAddr": {"Address": email},
            "BillAddr": {"City": city, "CountrySubDivisionCode": state, "PostalCode": postal,
                         "Country": "USA"},
            "SalesTermRef": {"value": _term(company, "Net 30")}}, {})
        assert customer["Id"] == expected, "demo ids must match the Salesforce demo"
    accounts = {a["Name"]: a["Id"] for a in company.tables["Account"].values()}
    items: dict[str, dict[str, Any]] = {}
    for name, sku, kind, price, taxable in DEMO_ITEMS:
        account = "Sales of Product Income" if kind == "NonInventory" else "Services"
        items[sku] = company.create("Item", {
            "Name": name, "Sku": sku, "Type": kind, "UnitPrice": Decimal(price),
            "Taxable": taxable, "IncomeAccountRef": {"value": accounts[account]}}, {})
    payments = []
    for expected, number, customer_id, opportunity, when, lines, paid in DEMO_INVOICES:
        body_lines = []
        for sku, qty in lines:
            item = items[sku]
            body_lines.append({"DetailType": "SalesItemLineDetail",
                               "Amount": item["UnitPrice"] * qty,
                               "SalesItemLineDetail": {
                                   "ItemRef": {"value": item["Id"]}, "Qty": qty,
                                   "UnitPrice": item["UnitPrice"],
                                   "TaxCodeRef": {"value": "TAX" if item["Taxable"] else "NON"}}})
        if paid == "taxed":
            set_sales_tax(company, DEMO_SALES_TAX, name="San Francisco")
        invoice = company.create("Invoice", {
            "DocNumber": number, "TxnDate": when, "CustomerRef": {"value": customer_id},
            "SalesTermRef": {"value": _term(company, "Net 30")}, "Line": body_lines,
            "PrivateNote": f"Salesforce opportunity: {opportunity}",
            "CustomField": [{"DefinitionId": "1", "Name": "Opportunity", "Type": "StringType",
                             "StringValue": opportunity[:31]}]}, {})
        assert invoice["Id"] == expected, "demo ids must match the Salesforce demo"
        if paid == "void":
            company.void("Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]})
        elif paid != "taxed" and Decimal(paid):
            payments.append((customer_id, invoice["Id"], Decimal(paid)))
    for customer_id, invoice_id, amount in payments:
        company.create("Payment", {
            "CustomerRef": {"value": customer_id}, "TotalAmt": amount,
            "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}]},
            {})
    for name, email in DEMO_VENDORS:  # after the rest: the ids above stay as the Salesforce demo has them
        company.create("Vendor", {"DisplayName": name, "CompanyName": name,
                                  "PrimaryEmailAddr": {"Address": email}}, {})
    seed_demo_cancellations(company, items)
    seed_demo_headers(company)
    seed_demo_projects(company)
    seed_demo_estimates(company, items)
    seed_demo_won_estimates(company, items)


def seed_demo_cancellations(company: Company, items: dict[str, dict[str, Any]]) -> None:
    """The cancelled deals (after the rest, so the ids above stay): each invoiced, then lost in
    Salesforce and cancelled by opportunity-cancellation; a bank account to refund from when the
    refund policy is on (the company has its payment methods from the start)."""
    for expected, number, customer_id, opportunity, when, lines, paid, credit_memo in DEMO_CANCELLATIONS:
        invoice = company.create("Invoice", {
            "DocNumber": number, "TxnDate": when, "CustomerRef": {"value": customer_id},
            "SalesTermRef": {"value": _term(company, "Net 30")},
            "PrivateNote": f"Salesforce opportunity: {opportunity}",
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": items[sku]["UnitPrice"] * qty,
                      "SalesItemLineDetail": {"ItemRef": {"value": items[sku]["Id"]}, "Qty": qty,
                                              "UnitPrice": items[sku]["UnitPrice"],
                                              "TaxCodeRef": {"value": "NON"}}} for sku, qty in lines]}, {})
        assert invoice["Id"] == expected, "demo ids must match the Salesforce demo"
        if paid == "void":
            company.void("Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]})
            continue
        amount = Decimal(paid)
        company.create("Payment", {"CustomerRef": {"value": customer_id}, "TotalAmt": amount, "TxnDate": when,
                                   "Line": [{"Amount": amount, "LinkedTxn": [
                                       {"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}, {})
        credit_id, credit_number = credit_memo
        unpaid = invoice["TotalAmt"] - amount
        memo = company.create("CreditMemo", {
            "DocNumber": credit_number, "CustomerRef": {"value": customer_id},
            "PrivateNote": f"Cancelled Salesforce opportunity: {opportunity}",
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": unpaid,
                      "SalesItemLineDetail": {"ItemRef": {"value": items[lines[0][0]]["Id"]},
                                              "TaxCodeRef": {"value": "NON"}}}]}, {})
        assert memo["Id"] == credit_id, "demo ids must match the Salesforce demo"
        company.create("Payment", {"CustomerRef": {"value": customer_id}, "TotalAmt": Decimal("0"), "Line": [
            {"Amount": unpaid, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]},
            {"Amount": unpaid, "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}]}, {})
    company.create("Account", {"Name": "Checking", "AccountType": "Bank", "AccountSubType": "Checking"}, {})


def seed_demo_estimates(company: Company, items: dict[str, dict[str, Any]]) -> None:
    """The estimates of :data:`DEMO_ESTIMATES`, Pending, as the flows write them."""
    for expected, customer_id, opportunity, when, lines in DEMO_ESTIMATES:
        estimate = company.create("Estimate", {
            "DocNumber": "SF-" + opportunity[:15], "TxnDate": when, "CustomerRef": {"value": customer_id},
            "ExpirationDate": (date.fromisoformat(when) + timedelta(days=30)).isoformat(),
            "PrivateNote": f"Salesforce Opportunity {opportunity}",
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": items[sku]["UnitPrice"] * qty,
                      "Description": items[sku]["Name"],
                      "SalesItemLineDetail": {
                          "ItemRef": {"value": items[sku]["Id"]}, "Qty": qty,
                          "UnitPrice": items[sku]["UnitPrice"],
                          "TaxCodeRef": {"value": "TAX" if items[sku]["Taxable"] else "NON"}}}
                     for sku, qty in lines]}, {})
        assert estimate["Id"] == expected, "demo ids must match the Salesforce demo"


def _lines(items: dict[str, dict[str, Any]], lines: tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    return [{"DetailType": "SalesItemLineDetail", "Amount": items[sku]["UnitPrice"] * qty,
             "Description": items[sku]["Name"],
             "SalesItemLineDetail": {"ItemRef": {"value": items[sku]["Id"]}, "Qty": qty,
                                     "UnitPrice": items[sku]["UnitPrice"],
                                     "TaxCodeRef": {"value": "TAX" if items[sku]["Taxable"] else "NON"}}}
            for sku, qty in lines]


def seed_demo_won_estimates(company: Company, items: dict[str, dict[str, Any]]) -> None:
    """The won Estimate deals of :data:`DEMO_WON_ESTIMATES` (after the rest, so the ids above
    stay): the estimate, then its invoice made from it, which closes it and shows on it."""
    for estimate_id, invoice_id, customer_id, opportunity, estimated, invoiced, lines in DEMO_WON_ESTIMATES:
        number = "SF-" + opportunity[:15]
        estimate = company.create("Estimate", {
            "DocNumber": number, "TxnDate": estimated, "CustomerRef": {"value": customer_id},
            "ExpirationDate": (date.fromisoformat(estimated) + timedelta(days=30)).isoformat(),
            "PrivateNote": f"Salesforce Opportunity {opportunity}", "Line": _lines(items, lines)}, {})
        assert estimate["Id"] == estimate_id, "demo ids must match the Salesforce demo"
        invoice = company.create("Invoice", {
            "DocNumber": number, "TxnDate": invoiced, "CustomerRef": {"value": customer_id},
            "SalesTermRef": {"value": _term(company, "Net 30")},
            "PrivateNote": f"Salesforce Opportunity {opportunity}", "Line": _lines(items, lines),
            "LinkedTxn": [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]},
            {"include": "allowduplicatedocnum"})
        assert invoice["Id"] == invoice_id, "demo ids must match the Salesforce demo"


def _term(company: Company, name: str) -> str:
    return next(term_id for term_id, term in company.tables["Term"].items() if term["Name"] == name)

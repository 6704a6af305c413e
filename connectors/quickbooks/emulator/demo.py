"""Demo data of a fresh emulated company: a small chart of accounts, terms, items, customers."""

from __future__ import annotations

from decimal import Decimal

from connectors.quickbooks.emulator.entities import Company

__all__ = ["seed_company"]


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
        "SalesFormsPrefs": {"CustomTxnNumbers": True, "AllowDeposit": True, "CustomField": [
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

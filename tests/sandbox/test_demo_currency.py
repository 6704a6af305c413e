"""The multi-currency demo variant is one company too: the EUR account's customer is in euros."""

from __future__ import annotations

from connectors.quickbooks.emulator import create_app as create_quickbooks
from connectors.quickbooks.emulator.app import DEFAULT_REALM
from connectors.quickbooks.emulator.demo_currency import DEMO_RATES
from connectors.salesforce.emulator import create_app as create_salesforce


def test_the_eur_account_points_at_a_eur_customer_and_its_deal_waits_for_an_invoice() -> None:
    org = create_salesforce(demo=True, multicurrency=("USD", "EUR")).state.emulator.org
    company = create_quickbooks(demo=True, multicurrency=DEMO_RATES).state.emulator.companies[DEFAULT_REALM]
    assert company.tables["Preferences"]["1"]["CurrencyPrefs"]["MultiCurrencyEnabled"] is True
    [account] = [a for a in org.records["Account"].values() if a["CurrencyIsoCode"] == "EUR"]
    customer = company.tables["Customer"][account["QB_Customer_Id__c"]]
    assert customer["CurrencyRef"]["value"] == "EUR" and customer["DisplayName"] == f"{account['Name']} (EUR)"
    assert account["QB_Customer_Ids__c"] == f"EUR:{customer['Id']}"
    [deal] = [o for o in org.records["Opportunity"].values() if o["CurrencyIsoCode"] == "EUR"]
    assert deal["AccountId"] == account["Id"] and deal["IsWon"] and not deal["QuickBooks_Invoice_Id__c"]
    # Everything else is as in the home-currency demo: dollars, customers of dollars.
    assert {o["CurrencyIsoCode"] for o in org.records["Opportunity"].values() if o is not deal} == {"USD"}
    dollars = [c for c in company.tables["Customer"].values() if c["Id"] != customer["Id"]]
    assert {c["CurrencyRef"]["value"] for c in dollars} == {"USD"}
    assert all(i["ExchangeRate"] == 1 for i in company.tables["Invoice"].values())

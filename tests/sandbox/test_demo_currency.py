"""The demo's multi-currency part (sandbox mode starts with it) is one company too: the EUR
account's customer is in euros."""

from __future__ import annotations

from decimal import Decimal

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


def test_the_sandbox_actions_turn_multicurrency_on_in_running_emulators() -> None:
    """`splice sandbox currencies` (QuickBooks) and `splice sandbox eur-deal` (Salesforce) against
    served emulators: rates, the euro customer, the EUR account and its won deal."""
    import anyio
    import pytest

    from connectors.quickbooks.sandbox import multicurrency as quickbooks_multicurrency
    from connectors.salesforce.sandbox import multicurrency as salesforce_multicurrency
    from tests.support.servers import serve_in_thread

    qb_app, sf_app = create_quickbooks(demo=True), create_salesforce(demo=True)
    with serve_in_thread(qb_app, lifespan="off") as qb_base, serve_in_thread(sf_app, lifespan="off") as sf_base:
        said = anyio.run(quickbooks_multicurrency, {"baseUrl": qb_base}, ["EUR=1.1"])
        assert "1 EUR = 1.1 USD" in said and "Lumière Maison (EUR)" in said
        with pytest.raises(ValueError, match="not CODE=RATE"):
            anyio.run(quickbooks_multicurrency, {"baseUrl": qb_base}, ["EUR:1.1"])
        said = anyio.run(salesforce_multicurrency, {"baseUrl": sf_base}, [])
        assert "Multi-currency on (USD, EUR)" in said
    company = qb_app.state.emulator.companies[DEFAULT_REALM]
    assert company.exchange_rates == {"EUR": Decimal("1.1")}
    [euro] = [c for c in company.tables["Customer"].values() if c["CurrencyRef"]["value"] == "EUR"]
    org = sf_app.state.emulator.org
    [deal] = [o for o in org.records["Opportunity"].values() if o["CurrencyIsoCode"] == "EUR"]
    account = org.records["Account"][deal["AccountId"]]
    assert account["QB_Customer_Id__c"] is None  # the flows find the euro customer by e-mail
    assert account["Billing_Email__c"] == euro["PrimaryEmailAddr"]["Address"]
    assert any(e["payload"]["ChangeEventHeader"]["recordIds"] == [deal["Id"]] for e in org.events)


def test_sandbox_mode_starts_the_multicurrency_demo_and_the_actions_keep_it() -> None:
    """The sandbox's emulators (what `splice serve` starts in sandbox mode) have multi-currency on,
    the euro customer and the EUR account with its won deal; `currencies` and `eur-deal` on them
    add nothing a second time (they only set rates)."""
    import anyio

    from connectors.quickbooks.sandbox import emulator_options as quickbooks_options
    from connectors.quickbooks.sandbox import multicurrency as quickbooks_multicurrency
    from connectors.salesforce.sandbox import emulator_options as salesforce_options
    from connectors.salesforce.sandbox import multicurrency as salesforce_multicurrency
    from runtime import SandboxTarget
    from tests.support.servers import serve_in_thread

    target = SandboxTarget(connection="c", settings={}, server_url="http://serve", triggers=())
    qb_app = create_quickbooks(**quickbooks_options(target))
    sf_app = create_salesforce(**salesforce_options(target))
    company = qb_app.state.emulator.companies[DEFAULT_REALM]
    org = sf_app.state.emulator.org
    assert company.tables["Preferences"]["1"]["CurrencyPrefs"]["MultiCurrencyEnabled"] is True
    assert company.exchange_rates["EUR"] == Decimal("1.085")
    customers, accounts = len(company.tables["Customer"]), len(org.records["Account"])
    [deal] = [o for o in org.records["Opportunity"].values() if o["CurrencyIsoCode"] == "EUR"]
    account = org.records["Account"][deal["AccountId"]]
    assert company.tables["Customer"][account["QB_Customer_Id__c"]]["CurrencyRef"]["value"] == "EUR"
    with serve_in_thread(qb_app, lifespan="off") as qb_base, serve_in_thread(sf_app, lifespan="off") as sf_base:
        assert "Lumière Maison (EUR)" in anyio.run(quickbooks_multicurrency, {"baseUrl": qb_base}, [])
        assert deal["Id"] in anyio.run(salesforce_multicurrency, {"baseUrl": sf_base}, [])
    assert (len(company.tables["Customer"]), len(org.records["Account"])) == (customers, accounts)
    assert [o["Id"] for o in org.records["Opportunity"].values() if o["CurrencyIsoCode"] == "EUR"] == [deal["Id"]]

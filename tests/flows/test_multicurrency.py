"""Multi-currency: a deal invoiced in its own currency, one QuickBooks customer per (account, currency)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.flows.test_nightly_reconciliation import PERIOD
from tests.support.flows import Integration

pytestmark = pytest.mark.anyio

MULTICURRENCY = pytest.mark.splice(
    environ={"CURRENCY_ENABLED": "auto"},
    emulator_options={"salesforce": {"multicurrency": ("USD", "EUR")},
                      "quickbooks": {"multicurrency": {"EUR": "1.085"}}})


def deal(it: Integration, account: str, currency: str, *, price: float = 140.0, quantity: float = 8,
         name: str = "Deal", **fields: Any) -> str:
    """A won opportunity in ``currency`` with one line of ``quantity`` x ``price``."""
    product = it.product(f"Consulting {currency} {name}", price, Family="Services")
    opp = it.org.create("Opportunity", {"Name": name, "AccountId": account, "StageName": "Prospecting",
                                        "CloseDate": "2026-03-31", "CurrencyIsoCode": currency,
                                        "Pricebook2Id": it.org.standard_pricebook, **fields})
    it.org.create("OpportunityLineItem", {"OpportunityId": opp["Id"], "Quantity": quantity,
                                          "UnitPrice": price,
                                          "PricebookEntryId": it.pricebook_entries[product]})
    it.org.update("Opportunity", opp["Id"], {"StageName": "Closed Won"})
    return str(opp["Id"])


async def invoice(it: Integration, opp: str) -> dict[str, Any]:
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    [found] = [i for i in it.table("Invoice") if i["DocNumber"] == "SF-" + opp[:15]]
    return found


def customer(it: Integration, customer_id: str) -> dict[str, Any]:
    [found] = [c for c in it.table("Customer") if c["Id"] == customer_id]
    return found


@MULTICURRENCY
async def test_a_eur_deal_becomes_a_eur_invoice_of_a_eur_customer(integration: Integration) -> None:
    it = integration
    account = it.account("Lumière SARL", Billing_Email__c="compta@lumiere-sarl.example", BillingCity="Lyon")
    inv = await invoice(it, deal(it, account, "EUR"))
    assert inv["CurrencyRef"]["value"] == "EUR"
    assert inv["TotalAmt"] == Decimal("1120.00")
    # QuickBooks' rate for EUR, and the amounts in the home currency.
    assert inv["ExchangeRate"] == Decimal("1.085") and inv["HomeTotalAmt"] == Decimal("1215.20")
    cust = customer(it, inv["CustomerRef"]["value"])
    assert cust["CurrencyRef"]["value"] == "EUR" and cust["DisplayName"] == "Lumière SARL (EUR)"
    written = it.record("Account", account)
    assert written["QB_Customer_Id__c"] == cust["Id"]  # its first currency's customer
    assert written["QB_Customer_Ids__c"] == f"EUR:{cust['Id']}"


@MULTICURRENCY
async def test_an_account_buying_in_usd_and_eur_has_two_customers_both_linked(integration: Integration) -> None:
    it = integration
    account = it.account("Two Currencies Ltd", Billing_Email__c="ap@two.example")
    usd = await invoice(it, deal(it, account, "USD", name="Dollar deal"))
    eur = await invoice(it, deal(it, account, "EUR", name="Euro deal"))
    again = await invoice(it, deal(it, account, "EUR", name="Second euro deal"))
    usd_customer = customer(it, usd["CustomerRef"]["value"])
    eur_customer = customer(it, eur["CustomerRef"]["value"])
    assert usd_customer["Id"] != eur_customer["Id"]
    assert (usd_customer["CurrencyRef"]["value"], usd["CurrencyRef"]["value"]) == ("USD", "USD")
    assert (eur_customer["CurrencyRef"]["value"], eur["CurrencyRef"]["value"]) == ("EUR", "EUR")
    assert usd_customer["DisplayName"] == "Two Currencies Ltd"
    assert eur_customer["DisplayName"] == "Two Currencies Ltd (EUR)"
    assert again["CustomerRef"]["value"] == eur_customer["Id"]  # the same EUR customer again
    written = it.record("Account", account)
    assert written["QB_Customer_Id__c"] == usd_customer["Id"]
    assert sorted(written["QB_Customer_Ids__c"].split(";")) == \
        [f"EUR:{eur_customer['Id']}", f"USD:{usd_customer['Id']}"]


@pytest.mark.splice(
    environ={"CURRENCY_ENABLED": "on", "CURRENCY_EXCHANGE_RATE_SOURCE": "Exchange_Rate__c"},
    emulator_options={"salesforce": {"multicurrency": ("USD", "EUR")},
                      "quickbooks": {"multicurrency": {"EUR": "1.085"}}})
async def test_a_configured_exchange_rate_is_used(integration: Integration) -> None:
    it = integration
    account = it.account("Rate Setter GmbH")
    inv = await invoice(it, deal(it, account, "EUR", Exchange_Rate__c=1.1))
    assert inv["ExchangeRate"] == Decimal("1.1") and inv["HomeTotalAmt"] == Decimal("1232.00")


@pytest.mark.splice(
    environ={"CURRENCY_ENABLED": "auto", "RECONCILIATION_BULK_POLL_INTERVAL": "10ms"},
    emulator_options={"salesforce": {"multicurrency": ("USD", "EUR")},
                      "quickbooks": {"multicurrency": {"EUR": "1.085"}}})
async def test_reconciliation_finds_the_eur_invoice_in_sync(integration: Integration, reports_dir: Path) -> None:
    """The invoice's TotalAmt in euros against the opportunity's Amount in euros: in sync, nothing
    repaired (its home-currency amount, 325.47 dollars, is not what is compared)."""
    it = integration
    opp = deal(it, it.account("Reconciled SA"), "EUR", price=99.99, quantity=3)
    inv = await invoice(it, opp)
    assert inv["TotalAmt"] == Decimal("299.97") == Decimal(str(it.record("Opportunity", opp)["Amount"]))
    assert inv["HomeTotalAmt"] == Decimal("325.47")
    outcome = await it.run("nightly-reconciliation", {**PERIOD, "repair": True})
    assert outcome.status == "completed", outcome.error
    summary = json.loads((reports_dir / f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}.json").read_text())
    assert summary["checked"] == 1
    assert (summary["amountMismatch"], summary["currencyMismatch"], summary["repairs"]["attempted"]) == (0, 0, 0)


@pytest.mark.splice(
    environ={"CURRENCY_ENABLED": "auto", "RECONCILIATION_BULK_POLL_INTERVAL": "10ms"},
    emulator_options={"salesforce": {"multicurrency": ("USD", "EUR")},
                      "quickbooks": {"multicurrency": {"EUR": "1.085"}}})
async def test_reconciliation_reports_an_invoice_in_another_currency(integration: Integration,
                                                                     reports_dir: Path) -> None:
    """A EUR deal invoiced in dollars (as before multi-currency was followed): same figure, other
    money. Reported as a currency mismatch, never repaired (no currency can change in QuickBooks)."""
    it = integration
    account = it.account("Dollar Invoiced SARL")
    opp = deal(it, account, "EUR", price=50, quantity=2)
    [inv] = [await invoice(it, opp)]
    dollars = it.company.create("Customer", {"DisplayName": "Dollar Invoiced SARL (USD)"}, {})
    it.company.update("Invoice", {**{k: v for k, v in inv.items() if k not in ("CurrencyRef", "ExchangeRate")},
                                  "CustomerRef": {"value": dollars["Id"]}}, {})
    outcome = await it.run("nightly-reconciliation", {**PERIOD, "repair": True})
    assert outcome.status == "completed", outcome.error
    name = f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}"
    summary = json.loads((reports_dir / f"{name}.json").read_text())
    assert (summary["currencyMismatch"], summary["amountMismatch"], summary["repairs"]["attempted"]) == (1, 0, 0)
    [finding] = [json.loads(line) for line in (reports_dir / f"{name}.jsonl").read_text().splitlines()]
    assert (finding["category"], finding["salesforce"], finding["quickbooks"], finding["repair"]) == \
        ("currency-mismatch", "EUR", "USD", None)


async def test_a_home_currency_company_is_unchanged(integration: Integration) -> None:
    """Multi-currency off in QuickBooks, auto: deals are invoiced in the home currency as before."""
    it = integration
    account = it.account("Home Only Inc", Currency__c="USD")
    product = it.product("Plain Hours", 100)
    opp = it.opportunity(account, [{"product": product, "Quantity": 2, "UnitPrice": 100}])
    inv = await invoice(it, opp)
    assert inv["CurrencyRef"]["value"] == "USD" and "ExchangeRate" not in inv and "HomeTotalAmt" not in inv
    assert it.record("Account", account)["QB_Customer_Ids__c"] is None


@pytest.mark.splice(
    environ={"CURRENCY_ENABLED": "auto"},
    emulator_options={"salesforce": {"demo": True, "multicurrency": ("USD", "EUR")},
                      "quickbooks": {"demo": True, "multicurrency": {"EUR": "1.085"}}})
async def test_the_demo_eur_deal_is_invoiced_in_euros_to_its_customer(integration: Integration) -> None:
    """The sandbox's multi-currency variant: the waiting EUR deal goes to the linked EUR customer."""
    it = integration
    [opp] = [o for o in it.org.records["Opportunity"].values() if o["CurrencyIsoCode"] == "EUR"]
    inv = await invoice(it, opp["Id"])
    assert inv["CustomerRef"] == {"value": "47", "name": "Lumière Maison (EUR)"}
    assert inv["CurrencyRef"]["value"] == "EUR" and inv["TotalAmt"] == Decimal("1120.00")
    assert inv["HomeTotalAmt"] == Decimal("1215.20")
    assert it.record("Account", opp["AccountId"])["QB_Customer_Ids__c"] == "EUR:47"


@pytest.mark.splice(environ={"CURRENCY_ENABLED": "auto"},
                    emulator_options={"salesforce": {"demo": True}, "quickbooks": {"demo": True}})
async def test_multicurrency_turned_on_in_running_demos_finds_the_euro_customer_by_e_mail(
        integration: Integration) -> None:
    """What the sandbox actions do (the emulators' control API): the EUR account has no link yet;
    its deal goes to the euro customer with its e-mail, who is then linked."""
    import httpx

    it = integration
    for app, body in ((it.qb_app, {"rates": {"EUR": "1.1"}, "demo": True}),
                      (it.sf_app, {"currencies": ["USD", "EUR"], "demo": True})):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator") as http:
            assert (await http.post("/_emulator/multicurrency", json=body)).status_code == 200
    [opp] = [o for o in it.org.records["Opportunity"].values() if o["CurrencyIsoCode"] == "EUR"]
    inv = await invoice(it, opp["Id"])
    euro = customer(it, inv["CustomerRef"]["value"])
    assert euro["DisplayName"] == "Lumière Maison (EUR)" and inv["CurrencyRef"]["value"] == "EUR"
    assert inv["ExchangeRate"] == Decimal("1.1")
    account = it.record("Account", opp["AccountId"])
    assert (account["QB_Customer_Id__c"], account["QB_Customer_Ids__c"]) == (euro["Id"], f"EUR:{euro['Id']}")


@MULTICURRENCY
async def test_an_account_whose_currency_changes_gets_a_customer_in_that_currency(
        integration: Integration) -> None:
    """QuickBooks never changes a customer's currency: an account that now buys in euros keeps its
    dollar customer and gets (or finds) one in euros, named by the template, linked per currency."""
    it = integration
    account = it.account("Maison Dupont", Billing_Email__c="ap@dupont.example", Currency__c="USD")
    outcome = await it.run("account-to-customer", it.record("Account", account))
    assert outcome.status == "completed", outcome.error
    dollars = customer(it, it.record("Account", account)["QB_Customer_Id__c"])
    assert dollars["CurrencyRef"]["value"] == "USD"

    it.org.update("Account", account, {"Currency__c": "EUR", "BillingCity": "Paris"})
    for _ in range(2):  # a re-delivered event changes nothing more
        outcome = await it.run("account-to-customer", it.record("Account", account))
        assert outcome.status == "completed", outcome.error
    [euros] = [c for c in it.table("Customer") if c["DisplayName"] == "Maison Dupont (EUR)"]
    assert euros["CurrencyRef"]["value"] == "EUR" and euros["BillAddr"]["City"] == "Paris"
    assert customer(it, dollars["Id"])["CurrencyRef"]["value"] == "USD"
    written = it.record("Account", account)
    assert written["QB_Customer_Id__c"] == dollars["Id"]
    assert sorted(written["QB_Customer_Ids__c"].split(";")) == [f"EUR:{euros['Id']}", f"USD:{dollars['Id']}"]


async def test_a_currency_change_in_a_home_currency_company_is_reported_not_dead_lettered(
        integration: Integration) -> None:
    """Multi-currency off in QuickBooks: the customer stays in the home currency, the account's
    other changes are synced, and its sync note says why its currency is not followed."""
    it = integration
    account = it.account("Plain Dollars LLC", Billing_Email__c="ap@plain.example", Currency__c="USD")
    assert (await it.run("account-to-customer", it.record("Account", account))).status == "completed"
    customer_id = it.record("Account", account)["QB_Customer_Id__c"]

    it.org.update("Account", account, {"Currency__c": "EUR", "BillingCity": "Reno"})
    outcome = await it.run("account-to-customer", it.record("Account", account))
    assert outcome.status == "completed", outcome.error
    kept = customer(it, customer_id)
    assert kept["CurrencyRef"]["value"] == "USD" and kept["BillAddr"]["City"] == "Reno"
    note = it.record("Account", account)["QB_Sync_Status__c"]
    assert "EUR" in note and "USD" in note, note

"""account-to-customer: Salesforce is the master; the Customer follows the Account, one direction."""

from __future__ import annotations

import pytest

from tests.support.flows import Integration

pytestmark = pytest.mark.anyio


async def test_account_creates_then_updates_its_customer(integration: Integration) -> None:
    it = integration
    account = it.account("Café d'Anjou", BillingCity="Angers", BillingCountry="France",
                         Billing_Email__c="compta@anjou.example")
    outcome = await it.run("account-to-customer", it.record("Account", account))
    assert outcome.status == "completed", outcome.error
    [customer] = [c for c in it.table("Customer") if c["DisplayName"] == "Café d'Anjou"]
    assert customer["BillAddr"]["City"] == "Angers"
    assert customer["PrimaryEmailAddr"]["Address"] == "compta@anjou.example"
    assert it.record("Account", account)["QB_Customer_Id__c"] == customer["Id"]

    it.org.update("Account", account, {"Name": "Café d'Anjou SARL", "BillingCity": "Nantes"})
    outcome = await it.run("account-to-customer", it.record("Account", account))
    assert outcome.status == "completed", outcome.error
    [renamed] = [c for c in it.table("Customer") if c["Id"] == customer["Id"]]
    assert renamed["DisplayName"] == "Café d'Anjou SARL" and renamed["BillAddr"]["City"] == "Nantes"
    assert renamed["PrimaryEmailAddr"]["Address"] == "compta@anjou.example"
    assert len(it.table("Customer")) == 4  # three demo customers and this one

    # Nothing changed: no write at all.
    sync_token = renamed["SyncToken"]
    assert (await it.run("account-to-customer", it.record("Account", account))).status == "completed"
    assert it.company.tables["Customer"][customer["Id"]]["SyncToken"] == sync_token


async def test_account_matches_an_existing_customer_by_name(integration: Integration) -> None:
    it = integration
    account = it.account("Cool Cars", Phone="+1 555 0100")
    assert (await it.run("account-to-customer", it.record("Account", account))).status == "completed"
    cars = [c for c in it.table("Customer") if c["DisplayName"] == "Cool Cars"]
    assert len(cars) == 1 and cars[0]["PrimaryPhone"]["FreeFormNumber"] == "+1 555 0100"
    assert it.record("Account", account)["QB_Customer_Id__c"] == cars[0]["Id"]


async def test_a_name_with_a_colon_becomes_a_name_quickbooks_accepts(integration: Integration) -> None:
    """QuickBooks refuses ':' (and tabs, newlines) in names, Salesforce does not: the customer
    and item names write it as ' - ' instead of failing every sync of the account."""
    it = integration
    account = it.account("Acme: West\tRegion")
    outcome = await it.run("account-to-customer", it.record("Account", account))
    assert outcome.status == "completed", outcome.error
    customer = it.company.tables["Customer"][it.record("Account", account)["QB_Customer_Id__c"]]
    assert customer["DisplayName"] == "Acme - West Region" == customer["CompanyName"]

    product = it.product("Audit: annual", 100)
    opportunity = it.opportunity(account, [{"product": product, "Quantity": 1}])
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opportunity))
    assert outcome.status == "completed", outcome.error
    assert "Audit - annual" in [item["Name"] for item in it.table("Item")]
    assert it.record("Opportunity", opportunity)["QuickBooks_Invoice_Id__c"]


async def test_empty_and_absent_address_fields_are_no_change(integration: Integration) -> None:
    """Salesforce sends an unset field as null (or ""), QuickBooks leaves it out: the same value.
    An account with gaps in its address, synced again (a re-delivered or polled event, a change of
    a field QuickBooks does not hold), writes nothing; a real change of one field still does."""
    it = integration
    account = it.account("Gappy Goods", BillingStreet="", BillingCity="Austin", BillingState=None,
                         BillingPostalCode="", BillingCountry="USA")
    outcome = await it.run("account-to-customer", it.record("Account", account))
    assert outcome.status == "completed", outcome.error
    customer_id = it.record("Account", account)["QB_Customer_Id__c"]
    sync_token = it.company.tables["Customer"][customer_id]["SyncToken"]

    it.org.update("Account", account, {"Industry": "Retail"})
    for _ in range(2):
        outcome = await it.run("account-to-customer", it.record("Account", account))
        assert outcome.status == "completed", outcome.error
    assert it.company.tables["Customer"][customer_id]["SyncToken"] == sync_token

    it.org.update("Account", account, {"BillingPostalCode": "78701"})
    outcome = await it.run("account-to-customer", it.record("Account", account))
    assert outcome.status == "completed", outcome.error
    customer = it.company.tables["Customer"][customer_id]
    assert customer["BillAddr"]["PostalCode"] == "78701" and customer["SyncToken"] != sync_token

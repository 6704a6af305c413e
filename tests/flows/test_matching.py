"""Matching: an account or product finds its QuickBooks customer or item, never another's.

Two accounts of one name are two customers; a customer linked to another account is never
invoiced for, nor overwritten by, this one; a name a Vendor or Employee holds is disambiguated
instead of dead-lettering every invoice; two products of one name with different SKUs are two
items. Each decision is on the record's sync note and in the execution's output.
"""

from __future__ import annotations

import pytest

from runtime.store import DeadLetterQueue
from tests.support.flows import Integration, open_integration

pytestmark = pytest.mark.anyio


def boston_and_denver(it: Integration) -> tuple[str, str]:
    """Two accounts named "Acme": Boston (synced first) and Denver."""
    boston = it.account("Acme", BillingCity="Boston", BillingPostalCode="02110",
                        Billing_Email__c="ap@acme-boston.example")
    denver = it.account("Acme", BillingCity="Denver", BillingPostalCode="80202",
                        Billing_Email__c="ap@acme-denver.example")
    return boston, denver


def customer(it: Integration, customer_id: str) -> dict:
    return dict(it.company.tables["Customer"][customer_id])


async def test_a_second_account_of_the_same_name_gets_its_own_customer(integration: Integration) -> None:
    """Denver's invoice goes to a customer of its own, 'Acme (Denver)'; Boston's customer keeps its
    address and e-mail; nothing is dead-lettered; both accounts say what happened."""
    it = integration
    boston, denver = boston_and_denver(it)
    outcome = await it.run("account-to-customer", it.record("Account", boston))
    assert outcome.status == "completed", outcome.error
    boston_id = it.record("Account", boston)["QB_Customer_Id__c"]
    assert customer(it, boston_id)["DisplayName"] == "Acme"

    product = it.product("Audit", 100)
    opp = it.opportunity(denver, [{"product": product, "Quantity": 2}])
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    denver_id = it.record("Account", denver)["QB_Customer_Id__c"]
    assert denver_id and denver_id != boston_id
    assert customer(it, denver_id)["DisplayName"] == "Acme (Denver)"
    [invoice] = it.table("Invoice")
    assert invoice["CustomerRef"]["value"] == denver_id

    outcome = await it.run("account-to-customer", it.record("Account", denver))
    assert outcome.status == "completed", outcome.error
    kept = customer(it, boston_id)
    assert kept["BillAddr"]["City"] == "Boston"
    assert kept["PrimaryEmailAddr"]["Address"] == "ap@acme-boston.example"
    assert customer(it, denver_id)["DisplayName"] == "Acme (Denver)"  # not "corrected" back
    assert customer(it, denver_id)["BillAddr"]["City"] == "Denver"
    assert outcome.message.payload["match"]["rule"] == "stored link"
    assert await DeadLetterQueue(it.store).list() == []

    note = it.record("Account", denver)["QB_Sync_Status__c"]
    assert "Acme (Denver)" in note and f"customer {boston_id}" in note and "linked to another" in note
    assert "Acme (Denver)" in it.record("Opportunity", opp)["QB_Sync_Error__c"]


async def test_the_decision_is_in_the_execution_output(integration: Integration) -> None:
    """account-to-customer's output names the action, the rule and every candidate considered."""
    it = integration
    boston, denver = boston_and_denver(it)
    await it.run("account-to-customer", it.record("Account", boston))
    outcome = await it.run("account-to-customer", it.record("Account", denver))
    assert outcome.status == "completed", outcome.error
    match = outcome.message.payload["match"]
    boston_id = it.record("Account", boston)["QB_Customer_Id__c"]
    assert match["action"] == "created" and match["rule"] == "disambiguation"
    assert match["name"] == "Acme (Denver)"
    assert match["candidates"] == [{"Id": boston_id, "name": "Acme", "rule": "name",
                                    "status": "linked to another record"}]
    assert outcome.message.payload["customer"]["DisplayName"] == "Acme (Denver)"


async def test_an_e_mail_match_links_an_unlinked_customer(integration: Integration) -> None:
    """The first rule: a customer with the account's e-mail (and nobody else's) is that customer."""
    it = integration
    account = it.account("Cool Cars Ltd", Billing_Email__c="cars@intuit.example")
    outcome = await it.run("account-to-customer", it.record("Account", account))
    assert outcome.status == "completed", outcome.error
    assert it.record("Account", account)["QB_Customer_Id__c"] == "13"
    assert outcome.message.payload["match"]["rule"] == "e-mail"
    assert "matched by e-mail" in it.record("Account", account)["QB_Sync_Status__c"]


async def test_hold_policy_keeps_the_opportunity_for_review() -> None:
    """matching.on-ambiguous = hold: no customer, no invoice, no dead letter; the opportunity says
    why in its sync-error field."""
    async with open_integration({"MATCHING_ON_AMBIGUOUS": "hold"}) as it:
        boston, denver = boston_and_denver(it)
        await it.run("account-to-customer", it.record("Account", boston))
        customers = len(it.table("Customer"))
        opp = it.opportunity(denver, [{"product": it.product("Audit", 100), "Quantity": 1}])
        outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
        assert outcome.status == "completed", outcome.error
        assert it.table("Invoice") == [] and len(it.table("Customer")) == customers
        assert await DeadLetterQueue(it.store).list() == []
        note = it.record("Opportunity", opp)["QB_Sync_Error__c"]
        assert note.startswith("Not invoiced: Held for review") and "linked to another record" in note
        assert outcome.message.payload["held"].startswith("Held for review")
        assert not it.record("Account", denver)["QB_Customer_Id__c"]


async def test_a_name_a_vendor_holds_is_disambiguated_not_dead_lettered(integration: Integration) -> None:
    """QuickBooks refuses a customer named like a vendor (6240): the template names it instead."""
    it = integration
    it.company.create("Vendor", {"DisplayName": "Pinewood Supplies"}, {})
    account = it.account("Pinewood Supplies", BillingCity="Portland")
    opp = it.opportunity(account, [{"product": it.product("Audit", 100), "Quantity": 1}])
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    customer_id = it.record("Account", account)["QB_Customer_Id__c"]
    assert customer(it, customer_id)["DisplayName"] == "Pinewood Supplies (Portland)"
    [invoice] = it.table("Invoice")
    assert invoice["CustomerRef"]["value"] == customer_id
    assert await DeadLetterQueue(it.store).list() == []
    note = it.record("Account", account)["QB_Sync_Status__c"]
    assert "Pinewood Supplies (Portland)" in note and "Vendor" in note

    # The next sync keeps the name QuickBooks accepted.
    outcome = await it.run("account-to-customer", it.record("Account", account))
    assert outcome.status == "completed", outcome.error
    assert customer(it, customer_id)["DisplayName"] == "Pinewood Supplies (Portland)"


async def test_an_employee_name_without_a_city_gets_a_numbered_name(integration: Integration) -> None:
    """No value for the template's field: a numbered suffix instead."""
    it = integration
    it.company.create("Employee", {"GivenName": "Ada", "FamilyName": "Byron"}, {})
    account = it.account("Ada Byron")
    outcome = await it.run("account-to-customer", it.record("Account", account))
    assert outcome.status == "completed", outcome.error
    made = customer(it, it.record("Account", account)["QB_Customer_Id__c"])
    assert made["DisplayName"] == "Ada Byron (2)"
    assert "Employee" in it.record("Account", account)["QB_Sync_Status__c"]


async def test_two_products_of_one_name_are_two_items(integration: Integration) -> None:
    """Same name, different SKUs: the second product gets its own item, never the first one's."""
    it = integration
    account = it.account("Item Buyer Inc")
    first = it.product("Widget Pro", 10, StockKeepingUnit="WP-1", ProductCode="WP-1")
    second = it.product("Widget Pro", 12, StockKeepingUnit="WP-2", ProductCode="WP-2")
    opp = it.opportunity(account, [{"product": first, "Quantity": 1}, {"product": second, "Quantity": 1}])
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    items = {i["Sku"]: i for i in it.table("Item") if i.get("Sku") in ("WP-1", "WP-2")}
    assert items["WP-1"]["Name"] == "Widget Pro" and items["WP-2"]["Name"] == "Widget Pro (WP-2)"
    [invoice] = it.table("Invoice")
    refs = [ln["SalesItemLineDetail"]["ItemRef"]["value"] for ln in invoice["Line"]
            if ln["DetailType"] == "SalesItemLineDetail"]
    assert refs == [items["WP-1"]["Id"], items["WP-2"]["Id"]]
    assert "Widget Pro (WP-2)" in it.record("Opportunity", opp)["QB_Sync_Error__c"]


async def test_an_account_renamed_to_a_vendors_name_keeps_syncing(integration: Integration) -> None:
    """The customer follows a renamed account to a free name: the template's, when a vendor holds
    the new one; nothing is dead-lettered."""
    it = integration
    vendor = it.company.create("Vendor", {"DisplayName": "Harbor Supply"}, {})
    account = it.account("Harbor Trading", BillingCity="Tacoma")
    assert (await it.run("account-to-customer", it.record("Account", account))).status == "completed"
    customer_id = it.record("Account", account)["QB_Customer_Id__c"]
    it.org.update("Account", account, {"Name": "Harbor Supply"})
    outcome = await it.run("account-to-customer", it.record("Account", account))
    assert outcome.status == "completed", outcome.error
    assert customer(it, customer_id)["DisplayName"] == "Harbor Supply (Tacoma)"
    note = it.record("Account", account)["QB_Sync_Status__c"]
    assert "renamed to 'Harbor Supply (Tacoma)'" in note and f"Vendor ({vendor['Id']})" in note
    assert await DeadLetterQueue(it.store).list() == []

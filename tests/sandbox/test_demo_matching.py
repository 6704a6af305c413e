"""The demo company's matching edges, synced by the shipped flows: two accounts named "O'Brien
Logistics" (Boston, already a customer; Denver, not yet) and an account named like a QuickBooks
vendor ("Pinewood Supplies"). Each gets a customer of its own, nothing is dead-lettered, and what
happened is on the account's sync note and in the execution's output."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.quickbooks.emulator.demo import seed_demo_company
from runtime.store import DeadLetterQueue
from tests.support.flows import Integration, open_integration

pytestmark = pytest.mark.anyio


def named(it: Integration, obj: str, name: str) -> list[dict[str, Any]]:
    return [dict(r) for r in it.org.records[obj].values() if r["Name"] == name]


async def test_the_demo_same_name_pair_and_vendor_collision_are_synced_apart(anyio_backend: str) -> None:
    async with open_integration(salesforce_options={"demo": True}) as it:
        seed_demo_company(it.company)
        boston, denver = sorted(named(it, "Account", "O'Brien Logistics"),
                                key=lambda a: a["BillingCity"])
        assert (boston["BillingCity"], denver["BillingCity"]) == ("Boston", "Denver")
        boston_customer = dict(it.company.tables["Customer"][boston["QB_Customer_Id__c"]])
        [vendor] = [v for v in it.company.tables["Vendor"].values()
                    if v["DisplayName"] == "Pinewood Supplies"]
        [pinewood] = named(it, "Account", "Pinewood Supplies")

        [opp] = named(it, "Opportunity", "O'Brien Logistics Denver - Depot widgets")
        outcome = await it.run("opportunity-to-invoice", {"Id": opp["Id"]})
        assert outcome.status == "completed", outcome.error
        denver_id = it.record("Account", denver["Id"])["QB_Customer_Id__c"]
        assert denver_id != boston["QB_Customer_Id__c"]
        assert it.company.tables["Customer"][denver_id]["DisplayName"] == "O'Brien Logistics (Denver)"
        invoice = it.company.tables["Invoice"][it.record("Opportunity", opp["Id"])["QuickBooks_Invoice_Id__c"]]
        assert invoice["CustomerRef"]["value"] == denver_id
        note = it.record("Account", denver["Id"])["QB_Sync_Status__c"]
        assert "O'Brien Logistics (Denver)" in note and f"customer {boston['QB_Customer_Id__c']}" in note

        outcome = await it.run("account-to-customer", {"Id": boston["Id"]})
        assert outcome.status == "completed", outcome.error
        assert outcome.message.payload["match"]["rule"] == "stored link"
        kept = it.company.tables["Customer"][boston["QB_Customer_Id__c"]]
        # Boston's own sync (Salesforce is the master) finds nothing of Denver's in its customer.
        assert kept["BillAddr"]["City"] == boston_customer["BillAddr"]["City"] == "Boston"
        assert kept["BillAddr"]["PostalCode"] == "02210"
        assert kept["PrimaryEmailAddr"] == boston_customer["PrimaryEmailAddr"]
        assert kept["DisplayName"] == "O'Brien Logistics"

        [opp] = named(it, "Opportunity", "Pinewood Supplies - Yard sensors")
        outcome = await it.run("opportunity-to-invoice", {"Id": opp["Id"]})
        assert outcome.status == "completed", outcome.error
        customer = it.company.tables["Customer"][it.record("Account", pinewood["Id"])["QB_Customer_Id__c"]]
        assert customer["DisplayName"] == "Pinewood Supplies (Portland)"
        assert it.company.tables["Vendor"][vendor["Id"]]["DisplayName"] == "Pinewood Supplies"
        note = it.record("Account", pinewood["Id"])["QB_Sync_Status__c"]
        assert "Pinewood Supplies (Portland)" in note and f"Vendor ({vendor['Id']})" in note
        assert await DeadLetterQueue(it.store).list() == []

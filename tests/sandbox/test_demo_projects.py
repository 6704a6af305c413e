"""The demo's project billed by milestones: both emulators agree on it, and `splice sandbox
bill-milestone` makes a milestone billable through the Salesforce emulator's REST API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.quickbooks.emulator import DEFAULT_REALM
from connectors.quickbooks.emulator import create_app as create_quickbooks
from connectors.quickbooks.emulator.demo_projects import DEMO_PROJECT_INVOICES, DEMO_PROJECT_JOB
from connectors.salesforce.emulator import create_app as create_salesforce
from connectors.salesforce.emulator.demo_projects import DEMO_MILESTONES, DEMO_PROJECT_OPPORTUNITY
from connectors.salesforce.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, bill_milestone
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.anyio


def test_the_project_and_its_milestones_agree_in_both_emulators() -> None:
    """Three milestones (paid, billable and invoiced, planned) of one opportunity billed by
    milestones; the job under the account's customer holds their invoices, numbered from the
    milestone ids, with the payment state the milestones say."""
    org = create_salesforce(demo=True).state.emulator.org
    company = create_quickbooks(demo=True).state.emulator.companies[DEFAULT_REALM]
    [opportunity] = [o for o in org.records["Opportunity"].values() if o["Name"] == DEMO_PROJECT_OPPORTUNITY[0]]
    assert opportunity["Bill_By_Milestone__c"] is True and opportunity["StageName"] == "Closed Won"
    account = org.records["Account"][opportunity["AccountId"]]
    milestones = sorted((m for m in org.records["Project_Milestone__c"].values()
                         if m["Opportunity__c"] == opportunity["Id"]), key=lambda m: str(m["Due_Date__c"]))
    assert [(m["Name"], m["Status__c"], m["Payment_Status__c"]) for m in milestones] == [
        ("Discovery and design", "Billable", "Paid"), ("Platform build", "Billable", "Unpaid"),
        ("Rollout and training", "Planned", None)]
    assert len(milestones) == len(DEMO_MILESTONES)
    parent_id, job_id, job_name = DEMO_PROJECT_JOB
    job = company.tables["Customer"][job_id]
    assert account["QB_Customer_Id__c"] == parent_id == job["ParentRef"]["value"]
    assert job["Job"] is True and job["DisplayName"] == job_name == opportunity["Name"]
    assert job["FullyQualifiedName"] == f"{account['Name']}:{job_name}"
    for milestone, (invoice_id, number, milestone_id, opportunity_id, *_rest) in zip(
            milestones, DEMO_PROJECT_INVOICES, strict=False):
        invoice = company.tables["Invoice"][invoice_id]
        assert (milestone["Id"], milestone["QuickBooks_Invoice_Id__c"]) == (milestone_id, invoice_id)
        assert invoice["DocNumber"] == number == milestone["QuickBooks_Invoice_Number__c"] == "SF-" + milestone_id[:15]
        assert opportunity_id == opportunity["Id"] and invoice["CustomerRef"]["value"] == job_id
        assert Decimal(str(invoice["TotalAmt"])) == Decimal(str(milestone["Amount__c"]))
        assert Decimal(str(invoice["Balance"])) == Decimal(str(milestone["Balance_Due__c"]))
    assert company.tables["Customer"][parent_id]["BalanceWithJobs"] == \
        company.tables["Customer"][parent_id]["Balance"] + Decimal("18000.00")


async def test_bill_milestone_makes_a_planned_milestone_billable() -> None:
    app = create_salesforce(demo=True, clients={SANDBOX_CLIENT_ID: SANDBOX_CLIENT_SECRET})
    org = app.state.emulator.org
    with serve_in_thread(app, lifespan="off") as base:
        emulator = {"baseUrl": base, "settings": {"client-id": SANDBOX_CLIENT_ID,
                                                  "client-secret": SANDBOX_CLIENT_SECRET}}
        said = await bill_milestone(emulator, ["Rollout", "and", "training"])
        assert said.startswith("Billable: Rollout and training (a0M") and "was Planned" in said
        [milestone] = [m for m in org.records["Project_Milestone__c"].values() if m["Name"] == "Rollout and training"]
        assert milestone["Status__c"] == "Billable"
        again = await bill_milestone(emulator, [milestone["Id"]])
        assert again.endswith("is already Billable")
        with pytest.raises(ValueError, match="no project milestone matches 'Nope'"):
            await bill_milestone(emulator, ["Nope"])
        with pytest.raises(ValueError, match="usage: splice sandbox bill-milestone"):
            await bill_milestone(emulator, [])
    assert any(e["channel"] == "/data/Project_Milestone__ChangeEvent" for e in org.events)

"""Projects billed by milestones: a billable milestone becomes one invoice on its project (a
QuickBooks job under the account's customer), and its payment state comes back to the milestone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from connectors.salesforce.emulator.query import run_query
from runtime.testing import wait_until
from tests.support.flows import Integration

pytestmark = pytest.mark.anyio


def seed_project(it: Integration, *, account: str = "Harbor Consulting Group",
                 opportunity: str = "Data platform") -> dict[str, str]:
    """An account, its won opportunity billed by milestones, and two milestones (one billable)."""
    account_id = it.account(account, BillingCity="Seattle", BillingPostalCode="98101",
                            Billing_Email__c="ap@harbor.example")
    opp = it.org.create("Opportunity", {"Name": opportunity, "AccountId": account_id,
                                        "StageName": "Closed Won", "CloseDate": "2026-04-20",
                                        "Amount": 30000, "Bill_By_Milestone__c": True})
    first = it.org.create("Project_Milestone__c", {
        "Name": "Discovery", "Opportunity__c": opp["Id"], "Amount__c": 12000.0,
        "Due_Date__c": "2026-05-15", "Status__c": "Billable"})
    second = it.org.create("Project_Milestone__c", {
        "Name": "Build", "Opportunity__c": opp["Id"], "Amount__c": 18000.0,
        "Due_Date__c": "2026-07-31", "Status__c": "In Progress"})
    return {"account": account_id, "opportunity": str(opp["Id"]), "first": str(first["Id"]),
            "second": str(second["Id"])}


async def invoice_milestone(it: Integration, milestone: str) -> Any:
    outcome = await it.run("milestone-to-invoice", it.record("Project_Milestone__c", milestone))
    assert outcome.status == "completed", outcome.error
    return outcome.message.payload


def jobs(it: Integration) -> list[dict[str, Any]]:
    return [c for c in it.table("Customer") if c.get("Job")]


async def test_a_billable_milestone_becomes_one_invoice_on_the_project_job(integration: Integration) -> None:
    it = integration
    ids = seed_project(it)
    invoice = await invoice_milestone(it, ids["first"])
    [customer] = [c for c in it.table("Customer") if c["DisplayName"] == "Harbor Consulting Group"]
    [job] = jobs(it)
    assert job["DisplayName"] == "Data platform" and job["ParentRef"]["value"] == customer["Id"]
    assert job["FullyQualifiedName"] == "Harbor Consulting Group:Data platform" and job["Level"] == 1
    [stored] = it.table("Invoice")
    assert stored["Id"] == invoice["Id"] and stored["CustomerRef"]["value"] == job["Id"]
    assert stored["DocNumber"] == "SF-" + ids["first"][:15]
    assert stored["TotalAmt"] == Decimal("12000.00") and stored["TxnDate"] == "2026-05-15"
    assert stored["PrivateNote"] == f"Salesforce Project Milestone {ids['first']} (Opportunity {ids['opportunity']})"
    assert [ln["Description"] for ln in stored["Line"] if ln["DetailType"] == "SalesItemLineDetail"] == ["Discovery"]
    milestone = it.record("Project_Milestone__c", ids["first"])
    assert milestone["QuickBooks_Invoice_Id__c"] == stored["Id"]
    assert milestone["QuickBooks_Invoice_Number__c"] == stored["DocNumber"]
    assert milestone["QuickBooks_Invoice_Link__c"].endswith("txnId=" + stored["Id"])
    assert (milestone["Payment_Status__c"], milestone["Amount_Paid__c"], milestone["Balance_Due__c"]) == \
        ("Unpaid", 0, 12000)
    assert it.record("Account", ids["account"])["QB_Customer_Id__c"] == customer["Id"]
    # The parent's balance counts its job's invoices.
    assert it.company.tables["Customer"][customer["Id"]]["BalanceWithJobs"] == Decimal("12000.00")


async def test_redelivery_makes_no_second_invoice_nor_job(integration: Integration) -> None:
    it = integration
    ids = seed_project(it)
    event = it.record("Project_Milestone__c", ids["first"])
    for _ in range(2):
        outcome = await it.run("milestone-to-invoice", event)
        assert outcome.status == "completed", outcome.error
    await invoice_milestone(it, ids["first"])
    assert len(it.table("Invoice")) == 1 and len(jobs(it)) == 1


async def test_a_milestone_not_billable_is_not_invoiced(integration: Integration) -> None:
    it = integration
    ids = seed_project(it)
    await invoice_milestone(it, ids["second"])
    assert it.table("Invoice") == [] and jobs(it) == []


async def test_the_second_milestone_reuses_the_project_job(integration: Integration) -> None:
    it = integration
    ids = seed_project(it)
    await invoice_milestone(it, ids["first"])
    it.org.update("Project_Milestone__c", ids["second"], {"Status__c": "Billable"})
    await invoice_milestone(it, ids["second"])
    [job] = jobs(it)
    assert [i["CustomerRef"]["value"] for i in it.table("Invoice")] == [job["Id"], job["Id"]]
    assert it.company.tables["Customer"][job["Id"]]["Balance"] == Decimal("30000.00")


async def test_payment_flows_back_to_the_milestone(integration: Integration) -> None:
    """A payment on the milestone's invoice (a QuickBooks webhook) updates the milestone: amount
    paid, balance due, status, last payment date."""
    it = integration
    ids = seed_project(it)
    invoice = await invoice_milestone(it, ids["first"])
    payment = it.company.create("Payment", {
        "CustomerRef": {"value": invoice["CustomerRef"]["value"]}, "TotalAmt": Decimal("5000.00"),
        "TxnDate": "2026-06-01",
        "Line": [{"Amount": Decimal("5000.00"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}, {})
    outcome = await it.run("payment-to-salesforce", {}, attributes={
        "entity": "Payment", "entityId": payment["Id"], "operation": "Create"})
    assert outcome.status == "completed", outcome.error
    milestone = it.record("Project_Milestone__c", ids["first"])
    assert (milestone["Payment_Status__c"], milestone["Amount_Paid__c"], milestone["Balance_Due__c"],
            milestone["Last_Payment_Date__c"]) == ("Partially Paid", 5000, 7000, "2026-06-01")


async def test_edits_update_the_unpaid_invoice_and_are_flagged_once_paid(integration: Integration) -> None:
    it = integration
    ids = seed_project(it)
    invoice = await invoice_milestone(it, ids["first"])
    it.org.update("Project_Milestone__c", ids["first"], {"Amount__c": 12500.0})
    await invoice_milestone(it, ids["first"])
    [updated] = it.table("Invoice")
    assert updated["Id"] == invoice["Id"] and updated["TotalAmt"] == Decimal("12500.00")
    it.company.create("Payment", {
        "CustomerRef": {"value": updated["CustomerRef"]["value"]}, "TotalAmt": Decimal("100.00"),
        "Line": [{"Amount": Decimal("100.00"), "LinkedTxn": [{"TxnId": updated["Id"], "TxnType": "Invoice"}]}]}, {})
    it.org.update("Project_Milestone__c", ids["first"], {"Amount__c": 13000.0})
    await invoice_milestone(it, ids["first"])
    [kept] = it.table("Invoice")
    assert kept["TotalAmt"] == Decimal("12500.00")
    error = it.record("Project_Milestone__c", ids["first"])["QB_Sync_Error__c"]
    assert error and "received payments" in error and kept["DocNumber"] in error


async def test_a_project_name_held_by_another_customer(integration: Integration) -> None:
    """The project's name is a customer of its own (and another account's job of the same name
    exists): the job takes the disambiguation name, and never links either of them."""
    it = integration
    other = it.company.create("Customer", {"DisplayName": "Data platform"}, {})
    ids = seed_project(it)
    await invoice_milestone(it, ids["first"])
    [job] = jobs(it)
    assert job["DisplayName"] == "Data platform (Harbor Consulting Group)"
    assert job["FullyQualifiedName"] == "Harbor Consulting Group:Data platform (Harbor Consulting Group)"
    assert it.table("Invoice")[0]["CustomerRef"]["value"] == job["Id"] != other["Id"]
    # A second account with a project of the same name gets a job of its own.
    more = seed_project(it, account="Quarry Partners")
    await invoice_milestone(it, more["first"])
    names = sorted(j["FullyQualifiedName"] for j in jobs(it))
    assert names == ["Harbor Consulting Group:Data platform (Harbor Consulting Group)",
                     "Quarry Partners:Data platform (Quarry Partners)"]


async def test_the_triggers_split_the_work(integration: Integration) -> None:
    """An opportunity billed by milestones is never invoiced whole (opportunity-to-invoice's trigger
    does not match it, while it matches any other won opportunity), and only a milestone in its
    billable status starts milestone-to-invoice."""
    it = integration
    ids = seed_project(it)
    plain = it.opportunity(ids["account"], [], name="Plain deal")
    flows = it.project.project.flows

    def matching(flow: str) -> set[str]:
        trigger = flows[flow].trigger
        assert trigger is not None
        obj, where = str(trigger.params["object"]), str(trigger.params["where"])
        _total, rows = run_query(it.org, f"SELECT Id FROM {obj} WHERE {where}")
        return {str(r["Id"]) for r in rows}

    assert matching("opportunity-to-invoice") == {plain}
    assert matching("milestone-to-invoice") == {ids["first"]}


async def test_customer_360_shows_the_projects_with_their_balances(integration: Integration) -> None:
    it = integration
    ids = seed_project(it)
    invoice = await invoice_milestone(it, ids["first"])
    it.company.create("Payment", {
        "CustomerRef": {"value": invoice["CustomerRef"]["value"]}, "TotalAmt": Decimal("2000.00"),
        "Line": [{"Amount": Decimal("2000.00"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}, {})
    outcome = await it.run("customer-360", None, {"method": "GET", "pathParams": {"accountId": ids["account"]}})
    assert outcome.status == "completed", outcome.error
    view = outcome.message.payload
    [project] = view["projects"]
    assert (project["name"], project["fullyQualifiedName"], project["level"], project["balance"]) == \
        ("Data platform", "Harbor Consulting Group:Data platform", 1, 10000)
    assert project["parentId"] == view["customer"]["id"] and project["isProject"] is False
    [open_invoice] = project["invoices"]["open"]
    assert (open_invoice["id"], open_invoice["milestoneId"], open_invoice["opportunityId"]) == \
        (invoice["Id"], ids["first"], ids["opportunity"])
    assert view["customer"]["balance"] == 0 and view["customer"]["balanceWithJobs"] == 10000
    assert view["totals"]["outstanding"] == 10000 and view["totals"]["paid"] == 2000
    assert [p["amount"] for p in view["payments"]] == [2000]


@pytest.mark.splice(environ={"RECONCILIATION_BULK_POLL_INTERVAL": "10ms"})
async def test_the_reconciliation_checks_billable_milestones(integration: Integration, reports_dir: Path) -> None:
    """A billable milestone without an invoice is missing, one whose amount changed after its
    (unpaid) invoice is an amount mismatch; the repair invoices the one and updates the other."""
    it = integration
    ids = seed_project(it)
    # An opportunity invoiced whole, in sync, beside the project.
    product = it.product("Advisory", 400)
    plain = it.opportunity(ids["account"], [{"product": product, "Quantity": 1}], close_date="2026-06-01")
    assert (await it.run("opportunity-to-invoice", it.record("Opportunity", plain))).status == "completed"
    invoice = await invoice_milestone(it, ids["first"])
    it.org.update("Project_Milestone__c", ids["first"], {"Amount__c": 12750.0})
    it.org.update("Project_Milestone__c", ids["second"], {"Status__c": "Billable"})
    period = {"from": "2026-05-01", "to": "2026-07-31"}
    name = f"reconciliation-{period['from']}-to-{period['to']}"
    outcome = await it.run("nightly-reconciliation", {**period, "repair": False})
    assert outcome.status == "completed", outcome.error
    summary = json.loads((reports_dir / f"{name}.json").read_text())
    assert {k: summary["milestones"][k] for k in ("checked", "missing", "amountMismatch", "repairsAttempted")} == \
        {"checked": 2, "missing": 1, "amountMismatch": 1, "repairsAttempted": 0}
    findings = [json.loads(line) for line in (reports_dir / f"{name}.jsonl").read_text().splitlines()]
    assert {(f["category"], f["milestoneId"]) for f in findings if "milestoneId" in f} == {
        ("missing", ids["second"]), ("amount-mismatch", ids["first"])}
    assert summary["checked"] == 1 and summary["findingsCount"] == len(findings) == 2
    assert len(it.table("Invoice")) == 2

    outcome = await it.run("nightly-reconciliation", {**period, "repair": True})
    assert outcome.status == "completed", outcome.error
    summary = json.loads((reports_dir / f"{name}.json").read_text())
    assert (summary["milestones"]["repairsAttempted"], summary["milestones"]["repairsFailed"]) == (2, 0)
    invoices = {i["DocNumber"]: i for i in it.table("Invoice")}
    assert invoices[invoice["DocNumber"]]["TotalAmt"] == Decimal("12750.00")
    assert invoices["SF-" + ids["second"][:15]]["TotalAmt"] == Decimal("18000.00")
    assert it.record("Project_Milestone__c", ids["second"])["QuickBooks_Invoice_Id__c"] == \
        invoices["SF-" + ids["second"][:15]]["Id"]


@pytest.mark.splice(environ={"TRIGGERS_FALLBACK_INTERVAL": "100ms", "TRIGGERS_RETRY_STREAM_AFTER": "300ms"},
                    emulator_options={"salesforce": {"long_poll_timeout": 0.2}})
async def test_a_milestone_made_billable_is_invoiced_through_its_change_events(integration: Integration) -> None:
    """The real trigger: the milestone object's own CDC channel (/data/Project_Milestone__ChangeEvent)."""
    it = integration
    ids = seed_project(it)
    emulator = it.sf_app.state.emulator

    def subscribed() -> bool:
        return any("/data/Project_Milestone__ChangeEvent" in c["subscriptions"]
                   for c in emulator.streaming_clients.values())

    async with anyio.create_task_group() as tg:
        tg.start_soon(it.runtime.run_triggers)
        await wait_until(subscribed, within=15, what="the milestone trigger to subscribe")
        it.org.update("Project_Milestone__c", ids["second"], {"Status__c": "Billable"})
        await wait_until(lambda: bool(it.record("Project_Milestone__c", ids["second"])["QuickBooks_Invoice_Id__c"]),
                         within=15, what="the billable milestone's invoice")
        it.runtime.request_stop()
    [invoice] = [i for i in it.table("Invoice") if i["DocNumber"] == "SF-" + ids["second"][:15]]
    assert invoice["TotalAmt"] == Decimal("18000.00")
    # Whichever path reached the first milestone (its earlier change events, or the nightly
    # reconciliation's run at start), each milestone has exactly one invoice.
    assert sorted(i["DocNumber"] for i in it.table("Invoice")) == sorted(
        "SF-" + ids[m][:15] for m in ("first", "second"))


@pytest.mark.splice(environ={"RECONCILIATION_BULK_POLL_INTERVAL": "10ms"},
                    emulator_options={"salesforce": {"demo": True}, "quickbooks": {"demo": True}})
async def test_the_demo_project_is_in_sync_and_its_planned_milestone_bills(integration: Integration,
                                                                           reports_dir: Path) -> None:
    """Against the sandbox demo: the reconciliation finds the demo's milestones in sync; billing
    the planned one invoices it on the demo's job, next to the other two."""
    it = integration
    today = datetime.now(UTC).date()
    period = {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat(), "repair": False}
    outcome = await it.run("nightly-reconciliation", period)
    assert outcome.status == "completed", outcome.error
    summary = json.loads((reports_dir / f"reconciliation-{period['from']}-to-{period['to']}.json").read_text())
    assert (summary["milestones"]["checked"], summary["milestones"]["findingsCount"]) == (2, 0)
    [planned] = [m for m in it.org.records["Project_Milestone__c"].values() if m["Status__c"] == "Planned"]
    it.org.update("Project_Milestone__c", planned["Id"], {"Status__c": "Billable"})
    invoice = await invoice_milestone(it, planned["Id"])
    assert invoice["CustomerRef"]["value"] == "40"
    assert [i["Id"] for i in it.table("Invoice") if i["CustomerRef"]["value"] == "40"] == ["41", "42", invoice["Id"]]
    assert len([c for c in it.table("Customer") if c.get("Job")]) == 1

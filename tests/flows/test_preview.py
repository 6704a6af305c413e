"""Previewing the shipped flows: a dry run makes the reads and shows every write it would make, with
its exact payload, and changes nothing in Salesforce, QuickBooks or the store's ledger."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from runtime.cli_preview import render_dry_run
from runtime.preview import DRY_RUN_ID, WritePlan, previewing
from runtime.store.executions import ExecutionHistory
from tests.flows.test_opportunity_to_invoice import seed_won
from tests.support.flows import Integration, open_integration

pytestmark = pytest.mark.anyio

#: Where the runtime and the connectors keep what must not move in a dry run.
LEDGERS = ("idempotency", "quickbooks-ledger", "quickbooks-xref", "dead-letters")
PERIOD = {"from": "2026-03-01", "to": "2026-03-31"}


def snapshot(it: Integration) -> tuple[Any, Any]:
    """Every record of both emulated systems, as they are now."""
    return (copy.deepcopy(it.org.records), copy.deepcopy(it.company.tables))


async def store_entries(it: Integration) -> dict[str, int]:
    return {namespace: await it.store.count(namespace) for namespace in LEDGERS}


async def dry_run(it: Integration, flow: str, payload: Any) -> tuple[Any, WritePlan]:
    with previewing() as plan:
        outcome = await it.run(flow, payload)
    return outcome, plan


async def test_a_dry_run_of_an_invoice_shows_its_writes_and_changes_nothing(
        integration: Integration) -> None:
    """The won opportunity's invoice create and the Salesforce write-back are shown with their
    payloads; afterwards neither system nor the ledger has changed, and the real run that follows
    makes exactly one invoice."""
    it = integration
    account, opp = seed_won(it)
    before, entries = snapshot(it), await store_entries(it)

    outcome, plan = await dry_run(it, "opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error

    writes = [(w.operation, w.action, dict(w.target)) for w in plan.writes]
    assert ("quickbooks.create", "create", {"entity": "Invoice"}) in writes
    assert ("salesforce.update", "update", {"object": "Opportunity", "id": opp}) in writes
    assert writes.index(("quickbooks.create", "create", {"entity": "Invoice"})) < writes.index(
        ("salesforce.update", "update", {"object": "Opportunity", "id": opp}))
    assert all(w.connection == w.operation.split(".")[0] for w in plan.writes)
    [invoice] = [w.payload for w in plan.writes if w.operation == "quickbooks.create"]
    assert invoice["DocNumber"] == "SF-" + opp[:15]
    assert invoice["PrivateNote"] == f"Salesforce Opportunity {opp}"
    sales = [ln for ln in invoice["Line"] if ln["DetailType"] == "SalesItemLineDetail"]
    assert [Decimal(str(ln["Amount"])) for ln in sales] == [
        Decimal("1875.00"), Decimal("3899.97"), Decimal("69.65")]
    [write_back] = [w.payload for w in plan.writes
                    if w.operation == "salesforce.update" and w.target["object"] == "Opportunity"]
    assert write_back["QuickBooks_Invoice_Id__c"] == DRY_RUN_ID
    assert write_back["QuickBooks_Invoice_Number__c"] == invoice["DocNumber"]

    # What `splice run --dry-run --output json` prints: the writes in order, then the result.
    printed = json.loads(render_dry_run("opportunity-to-invoice", outcome, outcome.message.payload,
                                        plan.writes, "json"))
    assert printed["dryRun"] is True and printed["status"] == "completed"
    assert [w["operation"] for w in printed["writes"]] == [w.operation for w in plan.writes]
    assert printed["result"]["Id"] == DRY_RUN_ID
    assert printed["result"]["DocNumber"] == invoice["DocNumber"]
    text = render_dry_run("opportunity-to-invoice", outcome, outcome.message.payload,
                          plan.writes, "text")
    assert f"salesforce.update (salesforce): update Opportunity {opp}" in text

    assert snapshot(it) == before
    assert it.table("Invoice") == []
    assert await store_entries(it) == entries
    history = it.runtime.engine.history
    if history is not None:
        await history.flush()
        assert await ExecutionHistory(it.store).count("opportunity-to-invoice") == 0

    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    [made] = it.table("Invoice")
    assert made["DocNumber"] == invoice["DocNumber"]
    assert it.record("Opportunity", opp)["QuickBooks_Invoice_Id__c"] == made["Id"]
    assert it.record("Account", account)["QB_Customer_Id__c"]


async def test_a_dry_run_makes_the_reads_and_previews_only_what_it_would_write(
        integration: Integration) -> None:
    """An invoiced opportunity, edited: the dry run reads the invoice and shows the update it would
    send (by Id, with its SyncToken), not a second create; the invoice stays as it was."""
    it = integration
    _, opp = seed_won(it)
    assert (await it.run("opportunity-to-invoice", it.record("Opportunity", opp))).status == "completed"
    [invoice] = it.table("Invoice")
    cable = next(li for li in it.org.records["OpportunityLineItem"].values()
                 if li["OpportunityId"] == opp and li["SortOrder"] == 3)
    it.org.update("OpportunityLineItem", cable["Id"], {"Quantity": 10})
    before, entries = snapshot(it), await store_entries(it)

    outcome, plan = await dry_run(it, "opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    assert [(w.operation, dict(w.target)) for w in plan.writes] == [
        ("quickbooks.update", {"entity": "Invoice", "id": invoice["Id"]})]
    [update] = plan.writes
    assert update.payload["Id"] == invoice["Id"]
    assert update.payload["SyncToken"] == invoice["SyncToken"]
    assert update.payload["sparse"] is True
    cable_line = next(ln for ln in update.payload["Line"] if ln.get("LineNum") == 3
                      or ln.get("Description") == "USB-C Cable")
    assert Decimal(str(cable_line["Amount"])) == Decimal("99.50")
    assert snapshot(it) == before and await store_entries(it) == entries


def _findings(reports: Path) -> dict[str, dict[str, Any]]:
    name = f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}"
    rows = [json.loads(line) for line in (reports / f"{name}.jsonl").read_text().splitlines()]
    return {row["opportunityId"] + ":" + row["category"]: row for row in rows}


async def test_reconciliation_repair_preview_lists_each_repair_and_changes_nothing(
        tmp_path: Path) -> None:
    """With the property reconciliation.repair set to preview, each repair runs as a dry run: the
    report lists the writes it would send (a missing invoice's create, an edited one's update, a
    payment status write-back) and neither system, the ledger nor the dead letters change."""
    reports = tmp_path / "reports"
    async with open_integration({"RECONCILIATION_REPORT_DIR": str(reports),
                                 "RECONCILIATION_BULK_POLL_INTERVAL": "10ms",
                                 "RECONCILIATION_REPAIR": "preview"}) as it:
        account = it.account("Preview Corp")
        product = it.product("Audit", 100)
        opps = {name: it.opportunity(account, [{"product": product, "Quantity": 2}], name=name,
                                     close_date="2026-03-15")
                for name in ("missing", "edited", "unpaid-status")}
        invoices = {}
        for name in ("edited", "unpaid-status"):
            assert (await it.run("opportunity-to-invoice",
                                 it.record("Opportunity", opps[name]))).status == "completed"
            invoices[name] = it.company.tables["Invoice"][
                it.record("Opportunity", opps[name])["QuickBooks_Invoice_Id__c"]]
        edited_line = next(li for li in it.org.records["OpportunityLineItem"].values()
                           if li["OpportunityId"] == opps["edited"])
        it.org.update("OpportunityLineItem", edited_line["Id"], {"Quantity": 3})
        paid = invoices["unpaid-status"]
        it.company.create("Payment", {"CustomerRef": paid["CustomerRef"], "TotalAmt": Decimal("200.00"),
                                      "TxnDate": "2026-03-20",
                                      "Line": [{"Amount": Decimal("200.00"), "LinkedTxn": [
                                          {"TxnId": paid["Id"], "TxnType": "Invoice"}]}]}, {})
        before, entries = snapshot(it), await store_entries(it)

        outcome = await it.run("nightly-reconciliation", dict(PERIOD))
        assert outcome.status == "completed", outcome.error

        summary = json.loads((reports / f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}.json")
                             .read_text())
        assert summary["repair"] == "preview" and summary["repaired"] == 0
        assert summary["repairs"] == {"attempted": 3, "done": 0, "failed": 0, "previewed": 3}
        found = _findings(reports)
        missing = found[opps["missing"] + ":missing"]
        assert missing["repairResult"] == "previewed"
        creates = [w for w in missing["repairWrites"] if w["operation"] == "quickbooks.create"]
        assert [w["target"] for w in creates] == [{"entity": "Invoice"}]
        assert creates[0]["payload"]["DocNumber"] == "SF-" + opps["missing"][:15]
        assert any(w["operation"] == "salesforce.update" and w["target"]["id"] == opps["missing"]
                   for w in missing["repairWrites"])
        edited = found[opps["edited"] + ":amount-mismatch"]
        assert [(w["operation"], w["target"]) for w in edited["repairWrites"]
                if w["operation"].startswith("quickbooks.")] == [
            ("quickbooks.update", {"entity": "Invoice", "id": invoices["edited"]["Id"]})]
        status = found[opps["unpaid-status"] + ":status-mismatch"]
        [status_write] = status["repairWrites"]
        assert status_write["operation"] == "salesforce.update"
        assert status_write["target"] == {"object": "Opportunity", "id": opps["unpaid-status"]}
        assert status_write["payload"]["Payment_Status__c"] == "Paid"
        table = (reports / f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}.txt").read_text()
        assert "would repair: invoice" in table and "repairs previewed 3 (nothing changed)" in table

        assert snapshot(it) == before
        assert await store_entries(it) == entries

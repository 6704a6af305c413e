"""nightly-reconciliation: won opportunities against QuickBooks invoices; report, then repair."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from runtime.message import Message
from runtime.store import DeadLetterQueue
from tests.support.flows import Integration, open_integration

pytestmark = [pytest.mark.anyio, pytest.mark.splice(environ={"RECONCILIATION_BULK_POLL_INTERVAL": "10ms"})]

PERIOD = {"from": "2026-03-01", "to": "2026-03-31"}


async def invoice(it: Integration, opp: str) -> dict[str, Any]:
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    return it.company.tables["Invoice"][it.record("Opportunity", opp)["QuickBooks_Invoice_Id__c"]]


def line_of(it: Integration, opp: str) -> dict[str, Any]:
    return next(li for li in it.org.records["OpportunityLineItem"].values() if li["OpportunityId"] == opp)


def pay(it: Integration, inv: dict[str, Any], amount: str) -> None:
    it.company.create("Payment", {"CustomerRef": inv["CustomerRef"], "TotalAmt": Decimal(amount), "TxnDate": "2026-03-20",
                                  "Line": [{"Amount": Decimal(amount),
                                            "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]}, {})


def categories(report_dir: Path) -> dict[str, set[str]]:
    name = f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}"
    found: dict[str, set[str]] = {}
    for line in (report_dir / f"{name}.jsonl").read_text().splitlines():
        finding = json.loads(line)
        found.setdefault(finding["category"], set()).add(finding["opportunityId"])
    return found


async def test_report_then_repair(integration: Integration, reports_dir: Path) -> None:
    reports = reports_dir
    it = integration
    account = it.account("Reconcile Corp")
    product = it.product("Audit", 100)
    opps = {name: it.opportunity(account, [{"product": product, "Quantity": 2}], name=name, close_date="2026-03-15")
            for name in ("clean", "missing", "edited", "unpaid-status", "duplicate", "paid-edited")}
    outside = it.opportunity(account, [{"product": product, "Quantity": 1}], name="april", close_date="2026-04-02")
    invoices = {name: await invoice(it, opp) for name, opp in opps.items() if name != "missing"}
    it.org.update("OpportunityLineItem", line_of(it, opps["edited"])["Id"], {"Quantity": 3})
    pay(it, invoices["unpaid-status"], "200.00")
    it.company.create("Invoice", {"CustomerRef": invoices["duplicate"]["CustomerRef"],
                                  "DocNumber": invoices["duplicate"]["DocNumber"],
                                  "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("200.00"),
                                            "SalesItemLineDetail": {"ItemRef": {"value": invoices["duplicate"]["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"]}}}]},
                      {"include": "allowduplicatedocnum"})
    second = it.company.create("Invoice", {"CustomerRef": invoices["clean"]["CustomerRef"], "DocNumber": "MANUAL-7",
                                           "TxnDate": "2026-03-16",
                                           "PrivateNote": f"Salesforce Opportunity {opps['clean']}",
                                           "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("200.00"),
                                                     "SalesItemLineDetail": {"ItemRef": invoices["clean"]["Line"][0]["SalesItemLineDetail"]["ItemRef"]}}]}, {})
    pay(it, invoices["paid-edited"], "50.00")
    it.org.update("OpportunityLineItem", line_of(it, opps["paid-edited"])["Id"], {"Quantity": 5})

    outcome = await it.run("nightly-reconciliation", {**PERIOD, "repair": False})
    assert outcome.status == "completed", outcome.error
    summary = json.loads((reports / f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}.json").read_text())
    assert summary["checked"] == 6 and summary["repaired"] == 0
    assert (summary["missing"], summary["duplicated"], summary["amountMismatch"]) == (1, 2, 2)
    found = categories(reports)
    # What the reconciliation-findings alert rule reads: every finding of the report, counted.
    lines = (reports / f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}.jsonl").read_text()
    assert summary["findingsCount"] == len(lines.splitlines()) == 7
    assert found["missing"] == {opps["missing"]}
    assert found["duplicated"] == {opps["duplicate"], opps["clean"]}
    assert found["amount-mismatch"] == {opps["edited"], opps["paid-edited"]}
    assert found["status-mismatch"] == {opps["unpaid-status"], opps["paid-edited"]}
    assert outside not in set().union(*found.values())
    table = (reports / f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}.txt").read_text()
    assert "checked 6, missing 1, duplicated 2, amount mismatch 2, status mismatch 2" in table
    assert f"duplicated      {opps['clean']}  MANUAL-7" in table
    rows = {line.split()[0] + " " + line.split()[1]: line for line in table.splitlines()
            if line.split() and line.split()[0] in ("missing", "duplicated", "amount-mismatch")}
    assert rows[f"duplicated {opps['duplicate']}"].endswith("report only")
    assert rows[f"missing {opps['missing']}"].endswith("repairable: invoice")
    assert len(it.table("Invoice")) == 7 and second["Id"]  # nothing written without repair

    outcome = await it.run("nightly-reconciliation", {**PERIOD, "repair": True})
    assert outcome.status == "completed", outcome.error
    assert it.record("Opportunity", opps["missing"])["QuickBooks_Invoice_Id__c"]
    edited = it.company.tables["Invoice"][invoices["edited"]["Id"]]
    assert edited["TotalAmt"] == Decimal("300.00")
    assert it.record("Opportunity", opps["unpaid-status"])["Payment_Status__c"] == "Paid"
    assert it.company.tables["Invoice"][invoices["paid-edited"]["Id"]]["TotalAmt"] == Decimal("200.00")

    outcome = await it.run("nightly-reconciliation", {**PERIOD})  # repair: the property, on in dev
    assert outcome.status == "completed", outcome.error
    summary = json.loads((reports / f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}.json").read_text())
    assert summary["repair"] is True and summary["repaired"] == 0  # what is left is report only
    found = categories(reports)
    assert found == {"duplicated": {opps["duplicate"], opps["clean"]}, "amount-mismatch": {opps["paid-edited"]}}


async def test_failed_repairs_are_counted_logged_and_kept_for_replay(
        integration: Integration, reports_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A repair that fails is not reported as done: the report counts it failed, it is logged at
    error level with its opportunity and kept as a dead letter of the flow that repairs, which a
    replay finishes once the cause is gone; the run itself ends failed (`splice run` exits 1)."""
    reports = reports_dir
    name = f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}"
    it = integration
    product = it.product("Audit", 100)
    fine = it.opportunity(it.account("Fine Corp"), [{"product": product, "Quantity": 1}],
                          name="fine", close_date="2026-03-10")
    # QuickBooks refuses a customer whose name a vendor has (6240), and vendors hold every
    # name the disambiguation would try next: this repair fails.
    vendor, *_ = [it.company.create("Vendor", {"DisplayName": taken}, {}) for taken in
                  ["Clash Supplies", *(f"Clash Supplies ({n})" for n in range(2, 10))]]
    blocked = it.opportunity(it.account("Clash Supplies"), [{"product": product, "Quantity": 1}],
                             name="blocked", close_date="2026-03-11")

    with caplog.at_level(logging.INFO):
        outcome = await it.run("nightly-reconciliation", {**PERIOD, "repair": True})
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.error_type == "RECONCILIATION:REPAIRS_FAILED"
    assert "1 of 2 repairs failed" in outcome.error.message

    summary = json.loads((reports / f"{name}.json").read_text())
    assert summary["repairs"] == {"attempted": 2, "done": 1, "failed": 1}
    assert summary["repaired"] == 1
    assert it.record("Opportunity", fine)["QuickBooks_Invoice_Id__c"]
    assert not it.record("Opportunity", blocked)["QuickBooks_Invoice_Id__c"]
    findings = {f["opportunityId"]: f for f in map(json.loads, (reports / f"{name}.jsonl").read_text().splitlines())}
    assert findings[fine]["repairResult"] == "done"
    assert findings[blocked]["repairResult"] == "failed"
    assert findings[blocked]["repairError"].startswith("QUICKBOOKS:")
    table = (reports / f"{name}.txt").read_text()
    assert "repairs attempted 2, done 1, failed 1" in table
    assert any(line.startswith(f"missing         {blocked}") and "repair failed: invoice" in line
               for line in table.splitlines())

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(blocked in text and "not invoiced" in text for text in errors)
    [summary_line] = [r.getMessage() for r in caplog.records if "reconciliation 2026-03-01" in r.getMessage()]
    assert "0 unlinked" in summary_line and "2 attempted, 1 done, 1 failed" in summary_line

    letters = await DeadLetterQueue(it.store).list()
    [letter] = [letter for letter in letters if letter.id == findings[blocked]["deadLetterId"]]
    assert letter.flow == "opportunity-to-invoice"
    assert letter.message["vars"]["trigger"] == {"Id": blocked}
    assert {letter.flow for letter in letters} == {"opportunity-to-invoice"}  # one letter, not two

    # The cause removed, the dead letter replays the repair.
    it.company.tables["Vendor"][vendor["Id"]]["DisplayName"] = "Clash Supplies (vendor)"
    replay = await it.runtime.engine.run(letter.flow, Message.from_dict(letter.message))
    assert replay.status == "completed", replay.error
    assert it.record("Opportunity", blocked)["QuickBooks_Invoice_Id__c"]


async def test_the_period_holds_opportunities_closed_in_it_with_an_earlier_close_date(
        integration: Integration, reports_dir: Path) -> None:
    """An opportunity closed won today with a close date of last month is checked tonight."""
    reports = reports_dir
    today = datetime.now(UTC).date()
    period = {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}
    it = integration
    product = it.product("Audit", 100)
    late = it.opportunity(it.account("Late Corp"), [{"product": product, "Quantity": 1}],
                          name="late", close_date=(today - timedelta(days=40)).isoformat())
    outcome = await it.run("nightly-reconciliation", {**period, "repair": False})
    assert outcome.status == "completed", outcome.error
    name = f"reconciliation-{period['from']}-to-{period['to']}"
    summary = json.loads((reports / f"{name}.json").read_text())
    assert summary["checked"] == 1 and summary["missing"] == 1
    assert [json.loads(line)["opportunityId"] for line in (reports / f"{name}.jsonl").read_text().splitlines()] == [late]


async def test_voided_and_deleted_invoices_are_reported_as_such(integration: Integration, reports_dir: Path) -> None:
    """A voided invoice is reported as voided (never "amount mismatch, repair": it is not written
    again); a deleted one as "deleted", invoiced again by a repair only when the policy
    reconciliation.reinvoice-deleted allows it."""
    reports = reports_dir
    name = f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}"
    environ = {"RECONCILIATION_REPORT_DIR": str(reports), "RECONCILIATION_BULK_POLL_INTERVAL": "10ms"}
    it = integration
    account = it.account("Void Corp")
    product = it.product("Audit", 100)
    voided = it.opportunity(account, [{"product": product, "Quantity": 2}], name="voided", close_date="2026-03-05")
    deleted = it.opportunity(account, [{"product": product, "Quantity": 3}], name="deleted", close_date="2026-03-06")
    void_inv, gone = await invoice(it, voided), await invoice(it, deleted)
    it.company.void("Invoice", {"Id": void_inv["Id"], "SyncToken": void_inv["SyncToken"]})
    it.company.delete("Invoice", {"Id": gone["Id"], "SyncToken": gone["SyncToken"]})
    void_token = it.company.tables["Invoice"][void_inv["Id"]]["SyncToken"]

    outcome = await it.run("nightly-reconciliation", {**PERIOD, "repair": True})
    assert outcome.status == "completed", outcome.error
    summary = json.loads((reports / f"{name}.json").read_text())
    assert (summary["voided"], summary["deleted"], summary["amountMismatch"], summary["missing"]) == (1, 1, 0, 0)
    found = categories(reports)
    assert found["voided"] == {voided} and found["deleted"] == {deleted}
    assert "amount-mismatch" not in found
    table = (reports / f"{name}.txt").read_text()
    assert "voided 1, deleted 1" in table
    assert it.company.tables["Invoice"][void_inv["Id"]]["SyncToken"] == void_token
    assert gone["Id"] not in it.company.tables["Invoice"] and len(it.table("Invoice")) == 1
    # The repair that is safe without the policy: both opportunities say what happened.
    assert it.record("Opportunity", voided)["Payment_Status__c"] == "Voided"
    assert it.record("Opportunity", deleted)["Payment_Status__c"] == "Deleted"

    async with open_integration({**environ, "RECONCILIATION_REINVOICE_DELETED": "true"}) as it:
        account = it.account("Void Corp")
        product = it.product("Audit", 100)
        deleted = it.opportunity(account, [{"product": product, "Quantity": 3}], name="deleted", close_date="2026-03-06")
        gone = await invoice(it, deleted)
        it.company.delete("Invoice", {"Id": gone["Id"], "SyncToken": gone["SyncToken"]})
        outcome = await it.run("nightly-reconciliation", {**PERIOD, "repair": True})
        assert outcome.status == "completed", outcome.error
        assert categories(reports) == {"deleted": {deleted}}
        [again] = it.table("Invoice")
        assert again["Id"] != gone["Id"] and again["DocNumber"] == gone["DocNumber"]
        assert again["TotalAmt"] == Decimal("300.00")
        record = it.record("Opportunity", deleted)
        assert record["QuickBooks_Invoice_Id__c"] == again["Id"] and record["QB_Sync_Error__c"] is None


async def test_taxed_invoices_are_in_sync_night_after_night(tmp_path: Path) -> None:
    """With automated sales tax on, QuickBooks adds tax to the invoice of a taxable product: its
    TotalAmt is the opportunity's Amount plus the tax. The reconciliation compares the pre-tax
    subtotal, so the invoice is in sync on two runs in a row and nothing is "repaired"; an invoice
    of a tax-exempt customer (no tax) likewise."""
    from connectors.quickbooks.emulator.salestax import set_sales_tax

    reports = tmp_path / "reports"
    name = f"reconciliation-{PERIOD['from']}-to-{PERIOD['to']}"
    async with open_integration({"RECONCILIATION_REPORT_DIR": str(reports),
                                 "RECONCILIATION_BULK_POLL_INTERVAL": "10ms"}) as it:
        set_sales_tax(it.company, "8.25")
        hardware = it.product("Router", 149.99, Family="Hardware")
        service = it.product("Setup", 95, Family="Services")
        lines = [{"product": hardware, "Quantity": 3}, {"product": service, "Quantity": 1}]
        taxed = it.opportunity(it.account("Taxed Corp"), lines, name="taxed", close_date="2026-03-12")
        exempt_account = it.account("Exempt School District")
        first = it.opportunity(exempt_account, [{"product": hardware, "Quantity": 1}], name="first",
                               close_date="2026-03-02")
        await invoice(it, first)
        customer_id = it.record("Account", exempt_account)["QB_Customer_Id__c"]
        customer = it.company.tables["Customer"][customer_id]
        it.company.update("Customer", {"Id": customer_id, "SyncToken": customer["SyncToken"],
                                       "sparse": True, "Taxable": False}, {})
        exempt = it.opportunity(exempt_account, lines, name="exempt", close_date="2026-03-13")
        taxed_inv, exempt_inv = await invoice(it, taxed), await invoice(it, exempt)
        # 3 x 149.99 = 449.97 taxable at 8.25% = 37.12; Setup is not taxable.
        assert taxed_inv["TxnTaxDetail"]["TotalTax"] == Decimal("37.12")
        assert taxed_inv["TotalAmt"] == Decimal("544.97") + Decimal("37.12")
        assert exempt_inv["TxnTaxDetail"]["TotalTax"] == 0 and exempt_inv["TotalAmt"] == Decimal("544.97")
        tokens = {i["Id"]: i["SyncToken"] for i in it.table("Invoice")}

        for night in (1, 2):
            outcome = await it.run("nightly-reconciliation", {**PERIOD, "repair": True})
            assert outcome.status == "completed", outcome.error
            summary = json.loads((reports / f"{name}.json").read_text())
            assert summary["checked"] == 3, night
            assert (summary["amountMismatch"], summary["repairs"]["attempted"]) == (0, 0), night
            assert (reports / f"{name}.jsonl").read_text() == "", night
            assert {i["Id"]: i["SyncToken"] for i in it.table("Invoice")} == tokens, night

"""nightly-reconciliation: won opportunities against QuickBooks invoices; report, then repair."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.flows import Integration, open_integration

pytestmark = pytest.mark.anyio

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


async def test_report_then_repair(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    async with open_integration({"RECONCILIATION_REPORT_DIR": str(reports),
                                 "RECONCILIATION_BULK_POLL_INTERVAL": "10ms"}) as it:
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

"""``splice serve`` on the shipped project (flows/salesforce-quickbooks) in sandbox mode: the demo's
Closed Won opportunities that wait for an invoice are invoiced at start, once each, with nobody
closing anything: the nightly reconciliation's schedule catches up the missed night at start and
repairs (repair is on in dev), whichever path gets to an opportunity first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.salesforce.emulator.demo import DEMO_OPPORTUNITIES, DEMO_SALES_RECEIPTS, DEMO_WON_ESTIMATES
from connectors.salesforce.emulator.demo_currency import DEMO_EUR_DEAL
from connectors.salesforce.emulator.demo_headers import DEMO_HEADER_OPPORTUNITY
from tests.support.sandbox import clean_env, serving, splice
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

SHIPPED = Path(__file__).resolve().parents[2] / "flows" / "salesforce-quickbooks"
#: The demo's Closed Won opportunities without an invoice.
WAITING = {name for _account, name, stage, _close, _lines, invoice in DEMO_OPPORTUNITIES
           if stage == "Closed Won" and invoice is None} | {DEMO_HEADER_OPPORTUNITY["name"], DEMO_EUR_DEAL[0]}
#: Every Closed Won opportunity of the demo: all were changed today (seeded at start), so the
#: reconciliation's period (closed or changed in it) holds each of them.
WON = {name for _account, name, stage, _close, _lines, _invoice in DEMO_OPPORTUNITIES
       if stage == "Closed Won"} | {DEMO_HEADER_OPPORTUNITY["name"], DEMO_EUR_DEAL[0]} | {
           name for name, *_rest in DEMO_WON_ESTIMATES}
#: The invoiced ones that were lost since (cancelled): checked too, and found in sync.
CANCELLED = {name for _account, name, stage, _close, _lines, invoice in DEMO_OPPORTUNITIES
             if stage != "Closed Won" and invoice is not None}
#: The Closed Won Sales Receipt deals waiting for their receipt (won as well).
RECEIPTS = {name for name, *_rest in DEMO_SALES_RECEIPTS}


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A copy of the shipped project; serve runs in its parent, where the reports then go."""
    root = tmp_path / "salesforce-quickbooks"
    shutil.copytree(SHIPPED, root, ignore=shutil.ignore_patterns("reports", ".splice"))
    return root


def test_waiting_closed_won_opportunities_are_invoiced_at_start(shipped: Path) -> None:
    assert len(WAITING) >= 3
    with serving(shipped, env=clean_env(SPLICE_ENV="dev")) as (base, _proc, log):
        emulators = httpx.get(f"{base}/sandbox").json()["emulators"]
        sf, qb = emulators["salesforce"]["baseUrl"], emulators["quickbooks"]["baseUrl"]

        def opportunities() -> dict[str, dict[str, Any]]:
            rows = httpx.get(f"{sf}/_emulator/records/Opportunity", timeout=5).json()
            return {row["Name"]: row for row in rows if row["Name"] in WAITING}

        waiting = opportunities()
        assert set(waiting) == WAITING
        reports = shipped.parent / "reports"
        wait_for(lambda: any(reports.glob("reconciliation-*.json")), timeout=90,
                 what="the reconciliation run at start to write its report")
        (report,) = reports.glob("reconciliation-*.json")
        summary = json.loads(report.read_text())
        assert summary["repair"] is True and \
            summary["checked"] == len(WON | RECEIPTS) + len(CANCELLED) > len(WAITING)
        assert summary["cancelled"] == 0
        assert summary["repairs"]["failed"] == 0
        # The voided demo invoice is reported as voided, not repaired (never written again).
        assert summary["voided"] == 1 and summary["amountMismatch"] == 0
        wait_for(lambda: all(o["QuickBooks_Invoice_Id__c"] for o in opportunities().values()),
                 timeout=60, what="every waiting opportunity to be linked to its invoice")

        invoices = httpx.get(f"{qb}/_emulator/entities", params={"entity": "invoice"}).json()["Invoice"]
        linked = opportunities()
        text = log.read_text()
        for name, opportunity in waiting.items():
            number = "SF-" + opportunity["Id"][:15]
            mine = [i for i in invoices if i["DocNumber"] == number
                    or opportunity["Id"] in str(i.get("PrivateNote", ""))]
            assert len(mine) == 1, f"{name}: {len(mine)} invoices"
            assert linked[name]["QuickBooks_Invoice_Id__c"] == mine[0]["Id"]
            assert f"opportunity {opportunity['Id']} invoiced as {number}" in text
            # The EUR account's won deal, in euros for its euro customer (multi-currency demo).
            if name == DEMO_EUR_DEAL[0]:
                assert mine[0]["CurrencyRef"]["value"] == "EUR" and mine[0]["CustomerRef"]["value"] == "47"
        # A Sales Receipt deal gets its receipt, not an invoice, and is Paid at once.
        rows = httpx.get(f"{sf}/_emulator/records/Opportunity", timeout=5).json()
        wait_for(lambda: all(r["Payment_Status__c"] == "Paid"
                             for r in httpx.get(f"{sf}/_emulator/records/Opportunity", timeout=5).json()
                             if r["Name"] in RECEIPTS), timeout=60, what="the sales receipt deals to be Paid")
        receipts = httpx.get(f"{qb}/_emulator/entities", params={"entity": "salesreceipt"}).json()["SalesReceipt"]
        for row in (r for r in rows if r["Name"] in RECEIPTS):
            assert [r["DocNumber"] for r in receipts if row["Id"] in r["PrivateNote"]] == ["SF-" + row["Id"][:15]]
            assert not [i for i in invoices if row["Id"] in str(i.get("PrivateNote", ""))]
        [voided] = [i for i in invoices if str(i.get("PrivateNote", "")).startswith("Voided - Salesforce opportunity: Globex")]
        assert voided["TotalAmt"] == 0 and voided["SyncToken"] == "1"
        assert "nightly-reconciliation: slot " in text and "(catch-up)" in text
        metrics = httpx.get(f"{base}/metrics").text
    assert "Traceback" not in log.read_text()
    assert_metrics_of_the_run(metrics)


#: What ``/metrics`` must offer (README, Metrics): executions by flow and outcome, execution and step
#: durations, connector requests by connector, operation and status, rate-limit waits, dead letters
#: by flow, trigger lag, token refresh failures, store latency.
LISTED_METRICS = {
    "splice_executions_total": "counter",
    "splice_execution_duration_seconds": "histogram",
    "splice_step_duration_seconds": "histogram",
    "splice_connector_requests_total": "counter",
    "splice_rate_limit_wait_seconds": "histogram",
    "splice_dead_letters_total": "counter",
    "splice_trigger_lag_seconds": "gauge",
    "splice_token_refresh_failures_total": "counter",
    "splice_store_operation_duration_seconds": "histogram",
}


def assert_metrics_of_the_run(text: str) -> None:
    """``curl /metrics`` after the sandbox run names what ran, with labels and values."""
    for name, kind in LISTED_METRICS.items():  # a family with nothing counted yet is still listed
        assert f"\n# TYPE {name} {kind}\n" in text, name
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))

    def total(name: str, **labels: str) -> float:
        return sum(value for found, value in samples.get(name, [])
                   if all(found.get(k) == v for k, v in labels.items()))

    assert total("splice_executions_total", flow="nightly-reconciliation", outcome="completed") >= 1
    assert total("splice_executions_total", outcome="completed") >= len(WAITING)
    assert total("splice_execution_duration_seconds_count", flow="nightly-reconciliation") >= 1
    assert total("splice_step_duration_seconds_count", step_kind="quickbooks.create") >= len(WAITING)
    assert total("splice_connector_requests_total", connector="quickbooks", status="200") >= 1
    assert total("splice_connector_requests_total", connector="salesforce", status="200") >= 1
    # By operation: the step a request was made for, or the trigger whose source polled.
    # Creates go to QuickBooks in batches (one /batch POST carries several), so at least one.
    assert total("splice_connector_requests_total", connector="quickbooks",
                 operation="quickbooks.create", method="POST") >= 1
    assert total("splice_batch_size_count", flow="opportunity-to-invoice",
                 operation="quickbooks.create") >= 1
    assert total("splice_connector_requests_total", connector="salesforce",
                 operation="salesforce.bulk-query") >= 1
    assert total("splice_connector_requests_total", operation="none") == 0
    assert total("splice_rate_limit_wait_seconds_count", connector="quickbooks") >= 1
    assert total("splice_store_operation_duration_seconds_count", operation="put") >= 1
    assert total("splice_trigger_running", flow="opportunity-to-invoice", state="running") == 1


def test_losing_an_invoiced_opportunity_and_crediting_an_invoice_by_hand(shipped: Path) -> None:
    """`splice sandbox lose-opportunity` on an invoiced demo opportunity voids its unpaid invoice
    and marks it; `splice sandbox credit` (a credit memo applied by hand in QuickBooks) shows on
    the opportunity as credited, its balance lowered."""
    with serving(shipped, env=clean_env(SPLICE_ENV="dev")) as (base, _proc, log):
        env = clean_env(SPLICE_URL=base)
        emulators = httpx.get(f"{base}/sandbox").json()["emulators"]
        sf, qb = emulators["salesforce"]["baseUrl"], emulators["quickbooks"]["baseUrl"]

        def opportunity(name: str) -> dict[str, Any]:
            rows = httpx.get(f"{sf}/_emulator/records/Opportunity", timeout=5).json()
            return next(row for row in rows if row["Name"] == name)

        def invoice(invoice_id: str) -> dict[str, Any]:
            rows = httpx.get(f"{qb}/_emulator/entities", params={"entity": "invoice"}).json()["Invoice"]
            return next(row for row in rows if row["Id"] == invoice_id)

        lost = splice("sandbox", "lose-opportunity", "O'Brien Logistics - Fleet gadgets", env=env)
        assert lost.returncode == 0, lost.stderr
        assert "Closed Lost: O'Brien Logistics - Fleet gadgets" in lost.stdout and "invoice 24" in lost.stdout
        wait_for(lambda: opportunity("O'Brien Logistics - Fleet gadgets")["Cancellation_Status__c"]
                 == "Cancelled - Voided", timeout=60, what="the lost opportunity to be cancelled")
        assert str(invoice("24")["PrivateNote"]).startswith("Voided")

        credited = splice("sandbox", "credit", "SF-006Rx000035hHV0", "100", env=env)
        assert credited.returncode == 0, credited.stderr
        assert "applied to invoice SF-006Rx000035hHV0" in credited.stdout
        wait_for(lambda: opportunity("Globex - Plant sensors")["Amount_Credited__c"] == 100, timeout=60,
                 what="the credit memo to reach the opportunity")
        globex = opportunity("Globex - Plant sensors")
        assert globex["Amount_Paid__c"] == 2000 and globex["Balance_Due__c"] == float(invoice("23")["Balance"])
        too_much = splice("sandbox", "credit", "SF-006Rx000035hHV0", "99999", env=env)
        assert too_much.returncode == 1 and "is more than that" in too_much.stderr
    assert "Traceback" not in log.read_text()

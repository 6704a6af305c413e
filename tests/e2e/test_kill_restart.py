"""The shipped Salesforce <-> QuickBooks project killed with SIGKILL in the middle of a burst of 200
closings, then restarted on the same store with faults on: every opportunity ends up with exactly
one invoice of the right amount, and edits after invoicing update that invoice.

Salesforce and QuickBooks are the emulators, each in its own process (``splice sandbox <connector>``)
so that they outlive the runtime, as the real systems would. ``splice serve`` runs every flow of
``flows/salesforce-quickbooks`` and reaches the emulators through credentials in the environment
(the real-credentials path: no emulator of its own starts); the QuickBooks request budget is raised
from the environment (``QUICKBOOKS_REQUESTS_PER_MINUTE``) and the QuickBooks emulator's own limits
are off, so the test is not paced by QuickBooks' 500 requests a minute.

The opportunities (two line items each, some discounted) are created and closed through the
Salesforce REST API (sObject Collections), so ``opportunity-to-invoice`` sees them as change
events. After the kill the emulators' faults go on: expired tokens, 5xx, 429, a row lock, a write
whose answer is lost after it was applied; after everything is invoiced, line items are edited
(some on closed opportunities, some re-opened and closed again) while QuickBooks moves invoices'
SyncTokens behind the flow's back (5010 Stale Object Error), once more often in a row than the
connector re-reads on its own, so the flow's ``on-error`` retry of ``QUICKBOOKS:STALE_OBJECT`` runs.
"""

from __future__ import annotations

import signal
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.support.e2e import (
    NOTE,
    ONE,
    PROJECT,
    STALL,
    Salesforce,
    burst_invoiced,
    close,
    credentials,
    doc,
    emulator,
    invoiced_totals,
    invoices,
    invoices_by_opportunity,
    line_totals,
    qb_faults,
    record,
    records,
    seed,
    start_serve,
    subtotal,
)
from tests.support.sandbox import splice
from tests.support.servers import free_port
from tests.support.waiting import wait_for, wait_for_progress

#: At rest the test takes about a minute, nearly all of it CPU-bound flow runs in three processes; on
#: a machine as loaded as 7 on 2 cores it took several times that. Its waits are bounded by progress
#: (see STALL), so this is only the bound on a run that never ends.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

OPPORTUNITIES = 200
def test_sigkill_mid_burst_then_restart_invoices_each_opportunity_once(tmp_path: Path) -> None:
    serve_port, sf_port, qb_port = free_port(), free_port(), free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    with emulator("salesforce", sf_port, "demo=true", "long_poll_timeout=5",
                  log=logs / "salesforce.log") as sf_base, \
            emulator("quickbooks", qb_port, "demo=true", "rate_limits=false",
                     "faults={latency: 0.01}",
                     f"webhook_url=http://127.0.0.1:{serve_port}/webhooks/quickbooks",
                     log=logs / "quickbooks.log") as qb:
        env = credentials(sf_base, qb)
        sf = Salesforce(sf_base)
        canary = seed(sf, 1, "Canary")
        ids = seed(sf, OPPORTUNITIES, "Burst")
        everyone = canary + ids
        serve_log = logs / "serve.log"
        proc = start_serve(tmp_path, serve_port, env, serve_log)
        try:
            # Closed at once after ready, possibly before the change-event subscription exists (a
            # fresh store subscribes for new events only): the trigger's first poll still finds it.
            close(sf, canary)
            wait_for(lambda: bool(invoices_by_opportunity(qb)[canary[0]]), timeout=ONE,
                     what="the canary opportunity's invoice", interval=0.5)

            close(sf, ids)
            wait_for_progress(lambda: burst_invoiced(qb, ids) >= 20, lambda: burst_invoiced(qb, ids),
                              stall=STALL, what="the first invoices of the burst", interval=0.2)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            at_kill = burst_invoiced(qb, ids)
            assert at_kill < OPPORTUNITIES, "the burst finished before the kill; nothing was proven"

            # One write answered 503 after it committed: the invoices left go in a few /batch
            # calls now, so one such fault is what the rest of the burst surely meets.
            qb_faults(qb, fail_next=3, throttle_next=3, expire_tokens=True, fail_after_commit=1)
            httpx.post(f"{sf_base}/_emulator/faults",
                       json={"token_expiry_every": 40, "unavailable": 3, "lock": 2}).raise_for_status()
            proc = start_serve(tmp_path, serve_port, env, serve_log)

            def linked() -> int:
                invoice_ids = {r["Id"]: r["QuickBooks_Invoice_Id__c"] for r in records(sf_base, "Opportunity")}
                return sum(1 for i in everyone if invoice_ids[i])

            wait_for_progress(lambda: linked() == len(everyone), linked, stall=STALL,
                              what="every opportunity to carry its invoice id", interval=1)
            faults = qb_faults(qb)
            assert (faults["fail_next"], faults["throttle_next"], faults["fail_after_commit"],
                    faults["expire_tokens"]) == (0, 0, 0, False), faults
            faults = httpx.get(f"{sf_base}/_emulator/faults").json()
            assert (faults["unavailable"], faults["lock"]) == (0, 0), faults
            assert faults["served"].get("token_expiry", 0) > 0, faults

            # Stale SyncTokens: five in a row outlast the connector's own re-reads (three), so the
            # flow's on-error retry of QUICKBOOKS:STALE_OBJECT has to finish the update.
            before = invoiced_totals(qb)
            first = ids[0]
            line = sf.query(f"SELECT Id, Quantity FROM OpportunityLineItem WHERE OpportunityId = '{first}'")[0]
            qb_faults(qb, stale_updates=5)
            sf.collection("PATCH", [record("OpportunityLineItem", Id=line["Id"],
                                            Quantity=line["Quantity"] + 3)])
            wait_for(lambda: invoiced_totals(qb)[doc(first)] == line_totals(sf_base)[first], timeout=ONE,
                     what="the invoice of the edited opportunity to be updated", interval=0.5)
            assert qb_faults(qb)["stale_updates"] == 0
            assert "QUICKBOOKS:STALE_OBJECT, retry" in serve_log.read_text()

            # Edits of closed opportunities, and opportunities re-opened, changed and closed again,
            # with SyncTokens moving, 5xx, 429 and lost answers on the invoice updates.
            edited, reopened = ids[1:25], ids[25:31]
            lines = {r["OpportunityId"]: r for r in sf.query(
                "SELECT Id, OpportunityId, Quantity FROM OpportunityLineItem WHERE OpportunityId IN ("
                + ", ".join(f"'{i}'" for i in edited + reopened) + ") ORDER BY Id")}
            qb_faults(qb, stale_updates=12, fail_next=2, throttle_next=2, fail_after_commit=2)
            sf.collection("PATCH", [record("OpportunityLineItem", Id=lines[i]["Id"],
                                            Quantity=lines[i]["Quantity"] + 1) for i in edited])
            close(sf, reopened, "Negotiation/Review")
            sf.collection("PATCH", [record("OpportunityLineItem", Id=lines[i]["Id"], Discount=25)
                                    for i in reopened])
            close(sf, reopened)
            changed = [first, *edited, *reopened]
            wanted = line_totals(sf_base)
            assert all(wanted[i] != before[doc(i)] for i in changed)

            def updated() -> int:
                now = invoiced_totals(qb)
                return sum(1 for i in changed if now[doc(i)] == wanted[i])

            wait_for_progress(lambda: updated() == len(changed), updated, stall=STALL,
                              what="the edited opportunities' invoices to be updated", interval=1)
            faults = qb_faults(qb)
            assert (faults["stale_updates"], faults["fail_next"], faults["throttle_next"],
                    faults["fail_after_commit"]) == (0, 0, 0, 0), faults
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)

        all_invoices = invoices(qb)
        notes = invoices_by_opportunity(qb)
        numbers = Counter(str(r.get("DocNumber")) for r in all_invoices)
        assert {i: (notes[i], numbers[doc(i)]) for i in everyone
                if (notes[i], numbers[doc(i)]) != (1, 1)} == {}, "opportunities without exactly one invoice"
        by_id = {r["Id"]: r for r in all_invoices}
        totals = line_totals(sf_base)
        opportunities = {r["Id"]: r for r in records(sf_base, "Opportunity")}
        wrong = {}
        for opportunity_id in everyone:
            opp = opportunities[opportunity_id]
            invoice = by_id.get(opp["QuickBooks_Invoice_Id__c"], {})
            got = (invoice.get("PrivateNote"), invoice.get("DocNumber"),
                   subtotal(invoice) if invoice else None,
                   Decimal(str(opp["Amount"])).quantize(Decimal("0.01")),
                   opp["QuickBooks_Invoice_Number__c"], opp["QB_Sync_Error__c"])
            expected = (NOTE + opportunity_id, doc(opportunity_id), totals[opportunity_id],
                        totals[opportunity_id], doc(opportunity_id), None)
            if got != expected:
                wrong[opportunity_id] = (got, expected)
        assert wrong == {}, "invoices that do not match their opportunity (got, expected)"

        letters = splice("dlq", "list", "-p", str(PROJECT), env=env, cwd=tmp_path)
        assert letters.returncode == 0, letters.stderr
        assert letters.stdout.strip() == "no dead letters", letters.stdout
    log_text = serve_log.read_text()
    assert "Traceback" not in log_text

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
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.sandbox import clean_env, splice, wait_ready
from tests.support.servers import free_port
from tests.support.waiting import wait_for, wait_for_progress

#: At rest the test takes about a minute, nearly all of it CPU-bound flow runs in three processes; on
#: a machine as loaded as 7 on 2 cores it took several times that. Its waits are bounded by progress
#: (see STALL), so this is only the bound on a run that never ends.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PROJECT = Path(__file__).resolve().parents[2] / "flows" / "salesforce-quickbooks"
OPPORTUNITIES = 200
ACCOUNTS = 20
REALM = "9130357766900000"
API = "/services/data/v66.0"
NOTE = "Salesforce Opportunity "
#: Bounds of the waits for one thing (a process to start, one opportunity to go through): generous,
#: since a loaded machine is slow at everything. Waits for the whole burst are bounded by progress
#: instead: they fail once nothing has moved for STALL seconds.
STARTUP = 120
ONE = 120
STALL = 90


@contextmanager
def emulator(name: str, port: int, *options: str, log: Path) -> Iterator[str]:
    """``splice sandbox <name>`` in its own process until the block ends."""
    args = [sys.executable, "-m", "runtime.cli", "sandbox", name, "--port", str(port)]
    for option in options:
        args += ["--option", option]
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=clean_env())
    base = f"http://127.0.0.1:{port}"
    probe = "/services/data/" if name == "salesforce" else "/_emulator/state"

    def up() -> bool:
        try:
            return httpx.get(base + probe, timeout=5).status_code == 200
        except httpx.TransportError:
            assert proc.poll() is None, log.read_text()
            return False

    try:
        wait_for(up, timeout=STARTUP, what=f"the {name} emulator to start", interval=0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def start_serve(workdir: Path, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """``splice serve`` on the shipped project; its store is ``.splice/store.db`` in ``workdir``."""
    out = log.open("a")
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "serve", "-p", str(PROJECT),
                             "--port", str(port), "--no-sandbox"], cwd=workdir, stdout=out,
                            stderr=subprocess.STDOUT, text=True, env=env)
    out.close()
    wait_ready(f"http://127.0.0.1:{port}", proc, timeout=STARTUP)
    return proc


class Salesforce:
    """A plain REST client of the Salesforce emulator, as a person's script would use it.

    The emulator's faults hit this client too (sessions expire, 503, row locks): a call is sent again
    after a new login or a short pause until it succeeds.
    """

    def __init__(self, base: str) -> None:
        self.base = base
        self.token = ""

    def login(self) -> None:
        answer = httpx.post(f"{self.base}/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": "e2e-script",
            "client_secret": "e2e-secret"})
        answer.raise_for_status()
        self.token = answer.json()["access_token"]

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        for _ in range(20):
            if not self.token:
                self.login()
            answer = httpx.request(method, self.base + API + path, headers={
                "Authorization": f"Bearer {self.token}"}, timeout=30, **kwargs)
            if answer.status_code == 401:
                self.token = ""
                continue
            if answer.status_code == 503:
                time.sleep(0.2)
                continue
            assert answer.status_code < 300, answer.text
            body = answer.json()
            if isinstance(body, list) and not all(r["success"] for r in body):
                locked = [e for r in body for e in r["errors"]
                          if e["statusCode"] in ("UNABLE_TO_LOCK_ROW", "ALL_OR_NONE_OPERATION_ROLLED_BACK")]
                assert locked, body
                time.sleep(0.2)
                continue
            return body
        raise AssertionError(f"{method} {path} kept failing")

    def query(self, soql: str) -> list[dict[str, Any]]:
        return list(self.call("GET", "/query", params={"q": soql})["records"])

    def collection(self, method: str, records: list[dict[str, Any]]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(records), 200):
            done = self.call(method, "/composite/sobjects", json={
                "allOrNone": True, "records": records[start:start + 200]})
            ids += [r["id"] for r in done]
        return ids


def _record(sobject: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": sobject}, **fields}


def seed(sf: Salesforce, count: int, prefix: str) -> list[str]:
    """``count`` open opportunities over ``ACCOUNTS`` new accounts, two line items each (every
    fourth with a 10 % discount on its first line)."""
    entries = sf.query("SELECT Id FROM PricebookEntry ORDER BY Id")
    book = sf.query("SELECT Id FROM Pricebook2 WHERE IsStandard = true")[0]["Id"]
    accounts = sf.collection("POST", [
        _record("Account", Name=f"{prefix} Buyer {i:02d}", BillingCity="Austin",
                BillingCountry="USA", Billing_Email__c=f"ap{i}@buyer.example", Currency__c="USD")
        for i in range(min(ACCOUNTS, count))])
    ids = sf.collection("POST", [
        _record("Opportunity", Name=f"{prefix} {i:03d}", AccountId=accounts[i % len(accounts)],
                StageName="Negotiation/Review", CloseDate="2026-11-20", Pricebook2Id=book)
        for i in range(count)])
    sf.collection("POST", [
        _record("OpportunityLineItem", OpportunityId=opp, Quantity=1 + (i + j) % 7,
                PricebookEntryId=entries[(i + j) % len(entries)]["Id"],
                **({"Discount": 10} if j == 0 and i % 4 == 0 else {}))
        for i, opp in enumerate(ids) for j in range(2)])
    return ids


def close(sf: Salesforce, ids: list[str], stage: str = "Closed Won") -> None:
    sf.collection("PATCH", [_record("Opportunity", Id=i, StageName=stage) for i in ids])


def invoices(qb: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{qb}/_emulator/entities", params={"entity": "invoice"},
                          timeout=30).json()["Invoice"])


def invoices_by_opportunity(qb: str) -> Counter[str]:
    return Counter(str(r["PrivateNote"]).removeprefix(NOTE) for r in invoices(qb)
                   if str(r.get("PrivateNote", "")).startswith(NOTE))


def burst_invoiced(qb: str, ids: list[str]) -> int:
    counts = invoices_by_opportunity(qb)
    return sum(counts[i] for i in ids)


def records(sf: str, sobject: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{sf}/_emulator/records/{sobject}", timeout=30).json())


def line_totals(sf: str) -> dict[str, Decimal]:
    """Each opportunity's sum of line item TotalPrice, to the cent."""
    totals: dict[str, Decimal] = {}
    for line in records(sf, "OpportunityLineItem"):
        opp = line["OpportunityId"]
        totals[opp] = totals.get(opp, Decimal(0)) + Decimal(str(line["TotalPrice"]))
    return {k: v.quantize(Decimal("0.01")) for k, v in totals.items()}


def subtotal(invoice: dict[str, Any]) -> Decimal:
    """What an invoice bills before the sales tax QuickBooks adds (the demo company has automated
    sales tax on): the opportunity's amount."""
    tax = (invoice.get("TxnTaxDetail") or {}).get("TotalTax") or 0
    return (Decimal(str(invoice.get("TotalAmt"))) - Decimal(str(tax))).quantize(Decimal("0.01"))


def invoiced_totals(qb: str) -> dict[str, Decimal]:
    """The invoice total before tax per opportunity (by DocNumber: SF- plus the 15-character id)."""
    return {str(r["DocNumber"]): subtotal(r)
            for r in invoices(qb) if str(r.get("DocNumber", "")).startswith("SF-")}


def doc(opportunity_id: str) -> str:
    return "SF-" + opportunity_id[:15]


def qb_faults(qb: str, **switches: Any) -> dict[str, Any]:
    answer = httpx.post(f"{qb}/_emulator/faults", json=switches)
    answer.raise_for_status()
    return dict(answer.json())


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
        env = clean_env(
            SALESFORCE_LOGIN_URL=sf_base, SALESFORCE_CLIENT_ID="e2e-app",
            SALESFORCE_CLIENT_SECRET="e2e-secret",
            QUICKBOOKS_CLIENT_ID="emulator-client", QUICKBOOKS_CLIENT_SECRET="emulator-secret",
            QUICKBOOKS_REALM_ID=REALM, QUICKBOOKS_REFRESH_TOKEN="emulator-refresh-token",
            QUICKBOOKS_BASE_URL=qb, QUICKBOOKS_TOKEN_URL=f"{qb}/oauth2/v1/tokens/bearer",
            QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN="emulator-verifier",
            QUICKBOOKS_REQUESTS_PER_MINUTE="100000", QUICKBOOKS_BATCH_PER_MINUTE="10000",
            QUICKBOOKS_MAX_CONCURRENT="10")
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

            qb_faults(qb, fail_next=3, throttle_next=3, expire_tokens=True, fail_after_commit=3)
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
            sf.collection("PATCH", [_record("OpportunityLineItem", Id=line["Id"],
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
            sf.collection("PATCH", [_record("OpportunityLineItem", Id=lines[i]["Id"],
                                            Quantity=lines[i]["Quantity"] + 1) for i in edited])
            close(sf, reopened, "Negotiation/Review")
            sf.collection("PATCH", [_record("OpportunityLineItem", Id=lines[i]["Id"], Discount=25)
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

"""What the end-to-end tests share: the emulators in their own processes (``splice sandbox``),
``splice serve`` on the shipped project reaching them through real credentials, a plain REST client
of the Salesforce emulator as a person's script would use it, and readers of both systems' records.
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

from tests.support.sandbox import clean_env, wait_ready
from tests.support.waiting import wait_for

__all__ = ["ACCOUNTS", "API", "NOTE", "ONE", "PROJECT", "REALM", "STALL", "STARTUP", "Salesforce",
           "burst_invoiced", "close", "credentials", "doc", "emulator", "invoiced_totals",
           "invoices", "invoices_by_opportunity", "kill", "line_totals", "qb_faults", "records",
           "seed", "start_serve", "subtotal"]

PROJECT = Path(__file__).resolve().parents[2] / "flows" / "salesforce-quickbooks"
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
    """``splice serve`` on the shipped project; its store is ``.splice/store.db`` in ``workdir``
    unless ``SPLICE_STORE`` in ``env`` names another."""
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


def record(sobject: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": sobject}, **fields}


def seed(sf: Salesforce, count: int, prefix: str) -> list[str]:
    """``count`` open opportunities over ``ACCOUNTS`` new accounts, two line items each (every
    fourth with a 10 % discount on its first line)."""
    entries = sf.query("SELECT Id FROM PricebookEntry ORDER BY Id")
    book = sf.query("SELECT Id FROM Pricebook2 WHERE IsStandard = true")[0]["Id"]
    accounts = sf.collection("POST", [
        record("Account", Name=f"{prefix} Buyer {i:02d}", BillingCity="Austin",
                BillingCountry="USA", Billing_Email__c=f"ap{i}@buyer.example", Currency__c="USD")
        for i in range(min(ACCOUNTS, count))])
    ids = sf.collection("POST", [
        record("Opportunity", Name=f"{prefix} {i:03d}", AccountId=accounts[i % len(accounts)],
                StageName="Negotiation/Review", CloseDate="2026-11-20", Pricebook2Id=book)
        for i in range(count)])
    sf.collection("POST", [
        record("OpportunityLineItem", OpportunityId=opp, Quantity=1 + (i + j) % 7,
                PricebookEntryId=entries[(i + j) % len(entries)]["Id"],
                **({"Discount": 10} if j == 0 and i % 4 == 0 else {}))
        for i, opp in enumerate(ids) for j in range(2)])
    return ids


def close(sf: Salesforce, ids: list[str], stage: str = "Closed Won") -> None:
    sf.collection("PATCH", [record("Opportunity", Id=i, StageName=stage) for i in ids])


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


def credentials(sf_base: str, qb: str, **extra: str) -> dict[str, str]:
    """The environment of a ``splice serve`` that reaches both emulators as real systems, with the
    QuickBooks budget raised so that a test is not paced by 500 requests a minute."""
    return clean_env(
        SALESFORCE_LOGIN_URL=sf_base, SALESFORCE_CLIENT_ID="e2e-app",
        SALESFORCE_CLIENT_SECRET="e2e-secret",
        QUICKBOOKS_CLIENT_ID="emulator-client", QUICKBOOKS_CLIENT_SECRET="emulator-secret",
        QUICKBOOKS_REALM_ID=REALM, QUICKBOOKS_REFRESH_TOKEN="emulator-refresh-token",
        QUICKBOOKS_BASE_URL=qb, QUICKBOOKS_TOKEN_URL=f"{qb}/oauth2/v1/tokens/bearer",
        QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN="emulator-verifier",
        QUICKBOOKS_REQUESTS_PER_MINUTE="100000", QUICKBOOKS_BATCH_PER_MINUTE="10000",
        QUICKBOOKS_MAX_CONCURRENT="10", **extra)


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL, as a crash or an OOM kill ends a process: no drain, no cleanup."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

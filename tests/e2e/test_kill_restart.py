"""The runtime killed with SIGKILL in the middle of a burst of 200 closings, then restarted on the
same store: every opportunity ends up with exactly one invoice.

Salesforce and QuickBooks are the emulators, each in its own process (``splice sandbox <connector>``)
so that they outlive the runtime, as the real systems would; ``splice serve`` reaches them through
credentials in the environment (the real-credentials path: no emulator of its own starts). The
project is the small sync project of ``tests/sandbox/fixtures`` (salesforce.changes polling ->
find-or-create customer -> create invoice with idempotency key ``opp-<Id>`` -> write the invoice id
back), whose QuickBooks request budget can be raised from the environment; the shipped flows'
connection keeps QuickBooks' real 500 requests a minute, which would make this test take minutes.
After the restart the emulators' faults go on (expired tokens, 5xx, 429, a write whose answer is
lost after it was applied), and the outcome must not change.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sandbox_support import FIXTURE, clean_env, free_port, wait_for, wait_ready

pytestmark = pytest.mark.slow

OPPORTUNITIES = 200
REALM = "9130357766900000"


@contextmanager
def emulator(name: str, port: int, *options: str, log: Path) -> Iterator[str]:
    """``splice sandbox <name>`` in its own process until the block ends."""
    args = [sys.executable, "-m", "runtime.cli", "sandbox", name, "--port", str(port)]
    for option in options:
        args += ["--option", option]
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=clean_env())
    base = f"http://127.0.0.1:{port}"
    try:
        probe = "/services/data/" if name == "salesforce" else "/_emulator/state"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(base + probe, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def start_serve(project: Path, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    out = log.open("a")
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "serve", "-p", str(project),
                             "--port", str(port), "--no-sandbox"], cwd=project.parent, stdout=out,
                            stderr=subprocess.STDOUT, text=True, env=env)
    out.close()
    wait_ready(f"http://127.0.0.1:{port}", proc)
    return proc


def invoices_by_opportunity(qb: str) -> Counter[str]:
    rows = httpx.get(f"{qb}/_emulator/entities", params={"entity": "invoice"}).json()["Invoice"]
    return Counter(r["PrivateNote"].removeprefix("Salesforce opportunity ") for r in rows
                   if str(r.get("PrivateNote", "")).startswith("Salesforce opportunity "))


def test_sigkill_mid_burst_then_restart_invoices_each_opportunity_once(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(FIXTURE, project)
    serve_port, sf_port, qb_port = free_port(), free_port(), free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    with emulator("salesforce", sf_port, "demo=true", log=logs / "salesforce.log") as sf, \
            emulator("quickbooks", qb_port, "demo=true", "rate_limits=false",
                     "faults={latency: 0.01}",
                     f"webhook_url=http://127.0.0.1:{serve_port}/webhooks/quickbooks",
                     log=logs / "quickbooks.log") as qb:
        env = clean_env(
            SALESFORCE_LOGIN_URL=sf, SALESFORCE_CLIENT_ID="e2e-app", SALESFORCE_CLIENT_SECRET="e2e-secret",
            QUICKBOOKS_CLIENT_ID="emulator-client", QUICKBOOKS_CLIENT_SECRET="emulator-secret",
            QUICKBOOKS_REALM_ID=REALM, QUICKBOOKS_REFRESH_TOKEN="emulator-refresh-token",
            QUICKBOOKS_BASE_URL=qb, QUICKBOOKS_TOKEN_URL=f"{qb}/oauth2/v1/tokens/bearer",
            QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN="emulator-verifier",
            QUICKBOOKS_REQUESTS_PER_MINUTE="100000")
        account = httpx.post(f"{sf}/_emulator/records/Account",
                             json={"record": {"Name": "Burst Buyers Ltd"}}).json()
        ids = [httpx.post(f"{sf}/_emulator/records/Opportunity", json={"record": {
            "Name": f"Burst {i:03d}", "AccountId": account["Id"], "StageName": "Negotiation/Review",
            "CloseDate": "2026-12-01", "Amount": 100 + i}}).json()["Id"] for i in range(OPPORTUNITIES)]
        serve_log = logs / "serve.log"
        proc = start_serve(project, serve_port, env, serve_log)
        try:
            token = httpx.post(f"{sf}/services/oauth2/token", data={
                "grant_type": "client_credentials", "client_id": "e2e-app",
                "client_secret": "e2e-secret"}).json()["access_token"]
            closed = httpx.patch(f"{sf}/services/data/v66.0/composite/sobjects", headers={
                "Authorization": f"Bearer {token}"}, json={"allOrNone": True, "records": [
                    {"attributes": {"type": "Opportunity"}, "Id": i, "StageName": "Closed Won"}
                    for i in ids]}, timeout=30)
            assert closed.status_code == 200 and all(r["success"] for r in closed.json())

            wait_for(lambda: sum(invoices_by_opportunity(qb).values()) >= 20, timeout=60,
                     what="the first invoices")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            at_kill = sum(invoices_by_opportunity(qb).values())
            assert at_kill < OPPORTUNITIES, "the burst finished before the kill; nothing was proven"

            httpx.post(f"{qb}/_emulator/faults", json={
                "fail_next": 3, "throttle_next": 3, "expire_tokens": True, "fail_after_commit": 2})
            httpx.post(f"{sf}/_emulator/faults", json={"token_expiry_every": 40, "unavailable": 3})
            proc = start_serve(project, serve_port, env, serve_log)

            def all_linked() -> bool:
                rows = httpx.get(f"{sf}/_emulator/records/Opportunity").json()
                return all(r["QuickBooks_Invoice_Id__c"] for r in rows if r["Id"] in set(ids))

            wait_for(all_linked, timeout=120, what="every opportunity to carry its invoice id")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        counts = invoices_by_opportunity(qb)
        assert {i: counts[i] for i in ids if counts[i] != 1} == {}, "an opportunity without " \
            "exactly one invoice"
        opportunities: dict[str, Any] = {r["Id"]: r for r in
                                         httpx.get(f"{sf}/_emulator/records/Opportunity").json()}
        invoices = {r["Id"]: r for r in httpx.get(f"{qb}/_emulator/entities",
                                                  params={"entity": "invoice"}).json()["Invoice"]}
        for opportunity_id in ids:
            invoice = invoices[opportunities[opportunity_id]["QuickBooks_Invoice_Id__c"]]
            assert invoice["PrivateNote"] == f"Salesforce opportunity {opportunity_id}"
            assert float(invoice["TotalAmt"]) == opportunities[opportunity_id]["Amount"]
        faults = httpx.get(f"{qb}/_emulator/state").json()["faults"]
        assert faults["fail_next"] == 0 and faults["throttle_next"] == 0
    assert "Traceback" not in serve_log.read_text()

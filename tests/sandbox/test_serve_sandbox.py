"""``splice serve`` in sandbox mode as a user runs it, and ``splice sandbox`` actions against it."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.support.sandbox import clean_env, serving, splice
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def test_serve_without_credentials_runs_the_sandbox(project: Path) -> None:
    """The banner says what runs where; /sandbox lists both emulators with demo credentials; the
    Closed Won demo opportunities get invoiced; closing one and paying an invoice through
    `splice sandbox` shows up in serve's console; SIGTERM stops the emulators too."""
    with serving(project) as (base, proc, log):
        info = httpx.get(f"{base}/sandbox").json()
        emulators = info["emulators"]
        assert set(emulators) == {"salesforce", "quickbooks"}
        sf, qb = emulators["salesforce"], emulators["quickbooks"]
        assert httpx.get(f"{sf['baseUrl']}/services/data/").status_code == 200
        assert qb["settings"]["client-id"] == "emulator-client"
        assert qb["webhookUrl"] == f"{base}/webhooks/quickbooks"
        text = log.read_text()
        assert "SANDBOX MODE" in text and sf["baseUrl"] in text and qb["baseUrl"] in text
        assert "splice sandbox close-opportunity" in text
        env = clean_env(SPLICE_URL=base)
        wait_for(lambda: "invoiced Zoë's Bäckerei - Ofen-Sensoren" in log.read_text(),
                 what="the demo's waiting Closed Won opportunities to be invoiced")

        closed = splice("sandbox", "close-opportunity", "Initech - Support plan", env=env)
        assert closed.returncode == 0, closed.stderr
        assert "Closed Won: Initech - Support plan" in closed.stdout
        wait_for(lambda: "invoiced Initech - Support plan as QuickBooks invoice" in log.read_text(),
                 what="the closed opportunity's invoice")
        listed = splice("sandbox", "list", env=env)
        assert listed.returncode == 0, listed.stderr
        row = next(line for line in listed.stdout.splitlines() if "Initech - Support plan" in line)
        assert "Closed Won" in row and " - " not in row.split("Closed Won")[1][:20]
        assert "QuickBooks invoices" in listed.stdout and "Salesforce opportunities" in listed.stdout

        paid = splice("sandbox", "pay", "1003", "180.50", env=env)
        assert paid.returncode == 0, paid.stderr
        payment_id = paid.stdout.split()[1]
        wait_for(lambda: f"payment {payment_id} of" in log.read_text(),
                 what="the payment webhook to reach the flow")

        sent = splice("sandbox", "send", "1003", "ap@acme.example", env=env)
        assert sent.returncode == 0, sent.stderr
        assert "e-mailed to ap@acme.example" in sent.stdout and "EmailSent" in sent.stdout

        bad = splice("sandbox", "pay", "1003", "lots", env=env)
        assert bad.returncode == 1 and bad.stderr.strip() == "splice: not an amount: 'lots'"
        ambiguous = splice("sandbox", "close-opportunity", "Globex", env=env)
        assert ambiguous.returncode == 1 and "5 opportunities match 'Globex'" in ambiguous.stderr

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{sf['baseUrl']}/services/data/", timeout=2)
    assert "Traceback" not in log.read_text()


def test_real_credentials_keep_the_emulators_off(project: Path) -> None:
    """With every credential in the environment no emulator starts: no banner, /sandbox is 404,
    and the connections point where the environment says; /ready says which trigger does not run
    (the QuickBooks webhook: no verifier token in this environment)."""
    env = clean_env(SALESFORCE_CLIENT_ID="3MVG9real", SALESFORCE_CLIENT_SECRET="real-secret",
                    SALESFORCE_LOGIN_URL="http://127.0.0.1:9", QUICKBOOKS_CLIENT_ID="ABreal",
                    QUICKBOOKS_CLIENT_SECRET="real-qb-secret", QUICKBOOKS_REALM_ID="4620816365",
                    QUICKBOOKS_BASE_URL="http://127.0.0.1:9")
    with serving(project, env=env, until="/health") as (base, _proc, log):
        assert httpx.get(f"{base}/sandbox").status_code == 404
        status = httpx.get(f"{base}/health").json()["connections"]
        assert status["quickbooks"]["baseUrl"] == "http://127.0.0.1:9"

        def not_ready() -> list[str]:
            response = httpx.get(f"{base}/ready", timeout=5)
            assert response.status_code in (200, 503), response.text
            return list(response.json().get("reasons", [])) if response.status_code == 503 else []

        wait_for(lambda: any("payment-to-salesforce" in r for r in not_ready()),
                 what="/ready to name the trigger that does not run")
        reason = next(r for r in not_ready() if "payment-to-salesforce" in r)
        assert reason.startswith("the trigger of flow 'payment-to-salesforce' (quickbooks.webhook) "
                                 "is restarting after ConnectionConfigError:"), reason
        assert "webhook-verifier-token" in reason
    assert "SANDBOX MODE" not in log.read_text()
    assert "real-secret" not in log.read_text()


def test_sandbox_actions_explain_what_is_missing(tmp_path: Path) -> None:
    """No serve at the URL, or a wrong action name: one line each, no traceback."""
    down = splice("sandbox", "list", "--url", "http://127.0.0.1:9")
    assert down.returncode == 1
    assert down.stderr.startswith("splice: no splice serve answers at http://127.0.0.1:9")
    unknown = splice("sandbox", "close-opportunityy")
    assert unknown.returncode == 2 and (
        "actions: bill-milestone, close-opportunity, credit, currencies, eur-deal, list, "
        "lose-opportunity, move-opportunity, pay, send") in unknown.stderr

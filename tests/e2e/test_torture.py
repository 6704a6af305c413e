"""The shipped project under everything at once: a burst of closings with ``splice serve`` killed
three times (SIGKILL), its PostgreSQL store's connections cut every 1.5 s, QuickBooks losing the
answers of creates it committed while forgetting request ids, expiring tokens, throttling, failing
with 5xx, Salesforce sessions expiring, and webhooks dropped and sent twice; then payments. Every
opportunity must end up with exactly one invoice, linked both ways, with the right payment status,
and nothing in the dead-letter queue.

The emulators and ``serve`` run in their own processes, as the real systems would; the store is
the local PostgreSQL, reached through a proxy in this process that cuts every open connection on
demand (a failover as the store sees it).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.blips import BlipProxy
from tests.support.e2e import (
    NOTE,
    ONE,
    PROJECT,
    REALM,
    STALL,
    Salesforce,
    burst_invoiced,
    close,
    credentials,
    doc,
    emulator,
    invoices,
    invoices_by_opportunity,
    kill,
    qb_faults,
    records,
    seed,
    start_serve,
)
from tests.support.sandbox import splice
from tests.support.servers import free_port
from tests.support.waiting import wait_for_progress

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1200)]

#: A restarted ``serve`` invoices in batches of up to 30, several at once: the burst is large
#: enough that the last kill still comes while invoices are being made.
OPPORTUNITIES = 150
#: How many opportunities have gone through when each of the three kills comes.
KILL_AT = (8, 30, 60)
POSTGRES = ("127.0.0.1", 5432)


class Cutter:
    """The blip proxy on its own event loop in a thread, cutting every ``every`` seconds while on."""

    def __init__(self, every: float = 1.5) -> None:
        self.every = every
        self.proxy = BlipProxy(*POSTGRES)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.cutting = threading.Event()
        self.cut_connections = 0

    def __enter__(self) -> Cutter:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result(10)
        self.cutter = asyncio.run_coroutine_threadsafe(self._cut_while_on(), self.loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self.cutting.clear()
        self.cutter.cancel()
        asyncio.run_coroutine_threadsafe(self.proxy.aclose(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _cut_while_on(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            if self.cutting.is_set():
                self.cut_connections += await self.proxy.cut(after=0.1)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A schema of its own in the local PostgreSQL, dropped afterwards; skips when unreachable."""
    import asyncpg

    schema = f"splice_torture_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def drop() -> None:
        conn = await asyncpg.connect(host=POSTGRES[0], port=POSTGRES[1], user="postgres",
                                     database="test")
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    try:
        asyncio.run(drop())
    except OSError as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES[0]}:{POSTGRES[1]} is not reachable ({exc})")
    try:
        yield schema
    finally:
        asyncio.run(drop())


class QuickBooksClerk:
    """A person entering payments in QuickBooks: the v3 API with a token of its own."""

    def __init__(self, qb: str) -> None:
        self.qb = qb
        refresh = httpx.post(f"{qb}/_emulator/tokens", json={"realm": REALM}).json()["refresh_token"]
        answer = httpx.post(f"{qb}/oauth2/v1/tokens/bearer", auth=("emulator-client", "emulator-secret"),
                            data={"grant_type": "refresh_token", "refresh_token": refresh})
        answer.raise_for_status()
        self.token = answer.json()["access_token"]

    def pay(self, invoice: dict[str, Any], amount: Decimal) -> None:
        body = {"CustomerRef": invoice["CustomerRef"], "TotalAmt": str(amount),
                "Line": [{"Amount": str(amount),
                          "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}
        for _ in range(20):  # the emulator's faults hit a person's calls too
            answer = httpx.post(f"{self.qb}/v3/company/{REALM}/payment?minorversion=75", json=body,
                                headers={"Authorization": f"Bearer {self.token}",
                                         "Accept": "application/json"}, timeout=30)
            if answer.status_code == 200:
                return
        raise AssertionError(f"could not enter a payment: {answer.status_code} {answer.text}")


def test_nothing_lost_and_nothing_twice_under_kills_store_cuts_lost_answers_and_bad_webhooks(
        tmp_path: Path) -> None:
    serve_port, sf_port, qb_port = free_port(), free_port(), free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    with postgres_schema() as schema, Cutter() as cutter, \
            emulator("salesforce", sf_port, "demo=true", "long_poll_timeout=5",
                     log=logs / "salesforce.log") as sf_base, \
            emulator("quickbooks", qb_port, "demo=true", "rate_limits=false", "faults={latency: 0.01}",
                     f"webhook_url=http://127.0.0.1:{serve_port}/webhooks/quickbooks",
                     log=logs / "quickbooks.log") as qb:
        store = f"postgresql://postgres@127.0.0.1:{cutter.proxy.port}/test?schema={schema}"
        env = credentials(sf_base, qb, SPLICE_STORE=store, TRIGGERS_PAYMENT_CHANGES_INTERVAL="5s",
                          TRIGGERS_FALLBACK_INTERVAL="5s")
        sf = Salesforce(sf_base)
        ids = seed(sf, OPPORTUNITIES, "Torture")
        serve_log = logs / "serve.log"
        proc = start_serve(tmp_path, serve_port, env, serve_log)
        try:
            qb_faults(qb, forget_request_ids=True, lose_answers=4, lost_answer="reset",
                      fail_next=3, throttle_next=3, expire_tokens=True, fail_after_commit=2,
                      duplicate_webhooks=5, drop_webhooks=5)
            httpx.post(f"{sf_base}/_emulator/faults",
                       json={"token_expiry_every": 40, "unavailable": 3}).raise_for_status()
            cutter.cutting.set()
            close(sf, ids)
            for at in KILL_AT:
                wait_for_progress(lambda at=at: burst_invoiced(qb, ids) >= at,
                                  lambda: burst_invoiced(qb, ids), stall=STALL,
                                  what=f"{at} invoices before a kill", interval=0.2)
                kill(proc)
                proc = start_serve(tmp_path, serve_port, env, serve_log)
            assert burst_invoiced(qb, ids) < OPPORTUNITIES, "the burst ended before the last kill"

            def linked() -> int:
                links = {r["Id"]: r["QuickBooks_Invoice_Id__c"] for r in records(sf_base, "Opportunity")}
                return sum(1 for i in ids if links[i])

            wait_for_progress(lambda: linked() == len(ids), linked, stall=STALL,
                              what="every opportunity to carry its invoice id", interval=1)
            cutter.cutting.clear()
            faults = qb_faults(qb)
            assert (faults["lose_answers"], faults["fail_next"], faults["throttle_next"],
                    faults["fail_after_commit"]) == (0, 0, 0, 0), faults
            assert cutter.cut_connections > 0

            # Payments, with webhooks dropped and doubled: change data capture makes up for the
            # dropped ones, and a doubled one changes nothing twice.
            by_doc = {str(r.get("DocNumber")): r for r in invoices(qb)}
            paid, partly = ids[:6], ids[6:12]
            qb_faults(qb, duplicate_webhooks=3, drop_webhooks=3)
            clerk = QuickBooksClerk(qb)
            for i in paid:
                clerk.pay(by_doc[doc(i)], Decimal(str(by_doc[doc(i)]["TotalAmt"])))
            for i in partly:
                clerk.pay(by_doc[doc(i)], Decimal("10.00"))
            wanted = {i: "Paid" for i in paid} | {i: "Partially Paid" for i in partly}

            def statuses_right() -> int:
                now = {r["Id"]: r["Payment_Status__c"] for r in records(sf_base, "Opportunity")}
                return sum(1 for i in ids if now[i] == wanted.get(i, "Unpaid"))

            try:
                wait_for_progress(lambda: statuses_right() == len(ids), statuses_right, stall=STALL,
                                  what="every opportunity's payment status", interval=1)
            except AssertionError as stuck:
                now = {r["Id"]: r for r in records(sf_base, "Opportunity")}
                balances = {str(r.get("DocNumber")): (r.get("Balance"), r.get("TotalAmt"))
                            for r in invoices(qb)}
                raise AssertionError(f"{stuck}; wrong: " + "; ".join(
                    f"{i} wants {wanted.get(i, 'Unpaid')}, has {now[i]['Payment_Status__c']} "
                    f"(balance, total in QuickBooks: {balances.get(doc(i))})"
                    for i in ids if now[i]["Payment_Status__c"] != wanted.get(i, "Unpaid"))) from None
            qb_faults(qb, duplicate_webhooks=0, drop_webhooks=0)  # deliveries batch: some may be left
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)

        state = httpx.get(f"{qb}/_emulator/state").json()
        assert state["webhooks"]["dropped"] > 0
        all_invoices = invoices(qb)
        notes = invoices_by_opportunity(qb)
        numbers = Counter(str(r.get("DocNumber")) for r in all_invoices)
        assert {i: (notes[i], numbers[doc(i)]) for i in ids
                if (notes[i], numbers[doc(i)]) != (1, 1)} == {}, "opportunities without exactly one invoice"
        by_id = {r["Id"]: r for r in all_invoices}
        opportunities = {r["Id"]: r for r in records(sf_base, "Opportunity")}
        wrong = {i: (opportunities[i]["QuickBooks_Invoice_Id__c"], opportunities[i]["QB_Sync_Error__c"])
                 for i in ids
                 if by_id.get(opportunities[i]["QuickBooks_Invoice_Id__c"], {}).get("PrivateNote")
                 != NOTE + i or opportunities[i]["QB_Sync_Error__c"] is not None}
        assert wrong == {}, "opportunities not linked to their own invoice"

        direct = f"postgresql://postgres@{POSTGRES[0]}:{POSTGRES[1]}/test?schema={schema}"
        letters = splice("dlq", "list", "-p", str(PROJECT), "--direct", env=credentials(sf_base, qb, SPLICE_STORE=direct),
                         cwd=tmp_path, timeout=ONE)
        assert letters.returncode == 0, letters.stderr
        assert letters.stdout.strip() == "no dead letters", letters.stdout
    log_text = serve_log.read_text()
    assert "Traceback" not in log_text

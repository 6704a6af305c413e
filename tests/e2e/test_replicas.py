"""Three ``splice serve`` replicas on one PostgreSQL store share a burst of closings, one of them
killed (SIGKILL) mid-way: nothing is lost, nothing is invoiced twice, the executions spread over
the replicas, and QuickBooks never sees more than a realm's limits in any rolling minute.

The emulators run in a process of their own (``tests/support/metered_emulators.py``), QuickBooks
with its real limits in scaled time, as ``benchmarks/sync.py`` runs it: 500 requests and 40 batch
calls per ``60 / SCALE`` seconds, 10 in flight, ``0.3 / SCALE`` seconds a call; every metered
request it sees is timed there. Each replica's QuickBooks budget is the realm's, scaled the same way
(``QUICKBOOKS_REQUESTS_PER_MINUTE``...). Opportunities are created and closed through the
Salesforce REST API; ``opportunity-to-invoice``'s change-event trigger runs on one replica and
hands its events to the store's work queue, from which every replica's workers take them.

The issue's figure is 1,000 closings; on a small shared machine three replicas and the emulators
take a long while over them, so the default is 200 and ``SPLICE_REPLICA_TEST_OPPORTUNITIES=1000``
runs the full burst.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.e2e import (
    NOTE,
    ONE,
    STALL,
    STARTUP,
    Salesforce,
    burst_invoiced,
    close,
    credentials,
    doc,
    invoices,
    invoices_by_opportunity,
    kill,
    records,
    seed,
    start_serve,
)
from tests.support.sandbox import clean_env
from tests.support.servers import free_port
from tests.support.waiting import wait_for, wait_for_progress

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(3600)]

OPPORTUNITIES = int(os.environ.get("SPLICE_REPLICA_TEST_OPPORTUNITIES", "200"))
REPLICAS = 3
#: QuickBooks minutes last 60 / SCALE seconds.
SCALE = 10.0
WINDOW = 60.0 / SCALE
#: A realm's limits per (scaled) minute.
REQUESTS_PER_MINUTE = 500
BATCHES_PER_MINUTE = 40
#: The share of the burst's executions each replica must have run.
FAIR_SHARE = 0.2
POSTGRES = os.environ.get("SPLICE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
FLOW = "opportunity-to-invoice"


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A schema of its own in the local PostgreSQL, dropped afterwards; skips when unreachable."""
    import asyncpg

    schema = f"splice_replicas_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    try:
        asyncio.run(drop())
    except OSError as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES} is not reachable ({exc})")
    try:
        yield schema
    finally:
        asyncio.run(drop())


@contextmanager
def metered_emulators(log: Path) -> Iterator[tuple[str, str]]:
    """Both emulators in their own process; their base URLs."""
    sf_port, qb_port = free_port(), free_port()
    root = Path(__file__).resolve().parents[2]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.metered_emulators", "--salesforce-port",
             str(sf_port), "--quickbooks-port", str(qb_port), "--scale", str(SCALE)],
            cwd=root, stdout=out, stderr=subprocess.STDOUT, env=clean_env())
    sf, qb = f"http://127.0.0.1:{sf_port}", f"http://127.0.0.1:{qb_port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"{qb}/_emulator/state", timeout=5).status_code == 200 and \
                httpx.get(f"{sf}/services/data/", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, timeout=STARTUP, what="the emulators to start", interval=0.1)
        yield sf, qb
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def executions_by_replica(store_url: str) -> Counter[str]:
    """How many executions of the invoicing flow each replica recorded (the store's history)."""
    from runtime.store import open_store
    from runtime.store.executions import ExecutionFilter, ExecutionHistory

    async def read() -> Counter[str]:
        async with open_store(store_url) as store:
            found = await ExecutionHistory(store).list(ExecutionFilter(flow=FLOW), limit=1_000_000)
        return Counter(str(record.get("replica")) for record in found)

    return asyncio.run(read())


def most_in_any_window(times: list[tuple[float, int]], window: float) -> tuple[int, float]:
    """The largest total weight of requests within ``window`` seconds of each other, and when
    that window began."""
    ordered = sorted(times)
    best, began, total, first = 0, 0.0, 0, 0
    for at, weight in ordered:
        total += weight
        while ordered[first][0] <= at - window:
            total -= ordered[first][1]
            first += 1
        if total > best:
            best, began = total, ordered[first][0]
    return best, began


def test_three_replicas_share_a_burst_and_survive_a_kill(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    with postgres_schema() as schema, metered_emulators(logs / "emulators.log") as (sf_base, qb):
        store_url = f"{POSTGRES}?schema={schema}"
        sf = Salesforce(sf_base)
        canary = seed(sf, 1, "Canary")
        ids = seed(sf, OPPORTUNITIES, "Burst")
        procs: dict[str, subprocess.Popen[str]] = {}
        try:
            for n in range(REPLICAS):
                name = f"replica-{n}"
                workdir = tmp_path / name
                workdir.mkdir()
                env = credentials(sf_base, qb)
                env.update(
                    SPLICE_STORE=store_url, SPLICE_REPLICA_ID=name,
                    # The realm's budget, scaled: 500 a minute leave 470 after the burst of 10 and
                    # the 20 a batch of 30 may spend before a minute begins (docs/quickbooks.md).
                    QUICKBOOKS_REQUESTS_PER_MINUTE=str(int((REQUESTS_PER_MINUTE - 30) * SCALE) + 30),
                    QUICKBOOKS_BATCH_PER_MINUTE=str(int(BATCHES_PER_MINUTE * SCALE)),
                    QUICKBOOKS_MAX_CONCURRENT="10",
                    # Three replicas, the emulators and PostgreSQL share two cores here: requests
                    # reach QuickBooks up to about 0.4 s bunched, 4 s of the budget's scaled minute.
                    QUICKBOOKS_RATE_JITTER=f"{0.4 * SCALE:g}",
                    TRIGGERS_FALLBACK_INTERVAL=f"{WINDOW:g}s",
                    TRIGGERS_RETRY_STREAM_AFTER=f"{300.0 / SCALE:g}s")
                procs[name] = start_serve(workdir, free_port(), env, logs / f"{name}.log")

            close(sf, canary)
            wait_for(lambda: bool(invoices_by_opportunity(qb)[canary[0]]), timeout=ONE,
                     what="the canary opportunity's invoice", interval=0.5)

            close(sf, ids)
            # Killed once it has run its share of the burst (so the share is checked on a replica
            # that died too) and while the burst is still under way.
            victim: list[str] = []

            def one_has_its_share() -> bool:
                ran = executions_by_replica(store_url)
                busiest, count = max(ran.items(), key=lambda kv: kv[1], default=("", 0))
                if count >= (FAIR_SHARE + 0.02) * OPPORTUNITIES + 1 and busiest in procs:
                    victim.append(busiest)
                    return True
                return False

            wait_for_progress(one_has_its_share, lambda: burst_invoiced(qb, ids), stall=STALL,
                              what="a replica to run its share of the burst", interval=0.5)
            kill(procs[victim[0]])
            at_kill = burst_invoiced(qb, ids)
            assert at_kill < OPPORTUNITIES, "the burst finished before the kill; nothing was proven"

            def linked() -> int:
                links = {r["Id"]: r["QuickBooks_Invoice_Id__c"]
                         for r in records(sf_base, "Opportunity")}
                return sum(1 for i in ids if links[i])

            wait_for_progress(lambda: linked() == len(ids), linked, stall=STALL,
                              what="every opportunity to carry its invoice id", interval=1)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                proc.wait(timeout=60)

        # 0 lost, 0 duplicates.
        notes = invoices_by_opportunity(qb)
        numbers = Counter(str(r.get("DocNumber")) for r in invoices(qb))
        assert {i: (notes[i], numbers[doc(i)]) for i in ids
                if (notes[i], numbers[doc(i)]) != (1, 1)} == {}, \
            "opportunities without exactly one invoice"
        opportunities = {r["Id"]: r for r in records(sf_base, "Opportunity")}
        by_id = {r["Id"]: r for r in invoices(qb)}
        unlinked = {i for i in ids if by_id.get(opportunities[i]["QuickBooks_Invoice_Id__c"], {})
                    .get("PrivateNote") != NOTE + i}
        assert unlinked == set(), "opportunities not linked to their own invoice"

        # Spread: each replica, the killed one included, ran at least a fifth of the executions.
        ran = executions_by_replica(store_url)
        total = sum(ran.values())
        # The killed replica's history lacks the records it had not written yet (its writer
        # flushes every 0.25 s, and one batch finishes many executions at once); every invoice
        # is checked above from QuickBooks itself.
        assert total >= OPPORTUNITIES * 0.85, f"{total} executions recorded for {OPPORTUNITIES}"
        shares = {name: ran.get(name, 0) / total for name in procs}
        assert set(ran) <= set(procs), f"executions of unknown replicas: {ran}"
        assert all(share >= FAIR_SHARE for share in shares.values()), \
            f"executions per replica: {dict(ran)} of {total}"

        # The realm's limits, in every rolling (scaled) minute.
        metered = httpx.get(f"{qb}/_test/metered", timeout=30).json()
        most, began = most_in_any_window([(at, n) for at, n in metered["requests"]], WINDOW)
        batches, _ = most_in_any_window([(at, 1) for at in metered["batches"]], WINDOW)
        assert most <= REQUESTS_PER_MINUTE, (
            f"QuickBooks saw {most} requests within {WINDOW:g} s (one scaled minute) from "
            f"{began:.1f} s; the realm allows {REQUESTS_PER_MINUTE}")
        assert batches <= BATCHES_PER_MINUTE, f"{batches} batch calls in one scaled minute"

    for name in procs:
        text = (logs / f"{name}.log").read_text()
        assert "Traceback" not in text, f"{name}: {text[-3000:]}"

"""Sync benchmark: the shipped Salesforce <-> QuickBooks flows against the emulators.

**Burst.** 1,000 opportunities close at once (five sObject Collections calls of 200) while the
project in ``flows/salesforce-quickbooks`` runs with every flow. QuickBooks' real limits are on, in
scaled time: the emulator allows 500 requests and 40 batch calls per ``60 / scale`` seconds and 10
in flight per realm, the connection budgets the same (``requests-per-minute`` x scale), and every
QuickBooks call takes ``0.3 / scale`` seconds (QuickBooks Online answers in about 300 ms). The
Salesforce connection's own cap (``requests-per-second``, 25) and the QuickBooks connection's
``retry-delay`` (0.5 s, the pause after a 429) are scaled likewise. With the
default ``--scale 10`` one QuickBooks minute lasts 6 s, with the same ratios between the rate, the
concurrency and the latency. Reported: invoices per QuickBooks minute and that figure as a fraction
of QuickBooks' own bound (500 invoices a minute: one metered create each), the metered QuickBooks
requests the flows spend per invoice (counted until the flows are quiet again; each item of a
``/batch`` call is one request, as QuickBooks meters it) and the HTTP calls behind them, the
Salesforce REST calls per invoice, the limit-bound maximum (500 / requests per invoice) and the
fraction of it reached, 429 answers, and duplicates (invoices per opportunity beyond one). ``--trigger stream polling`` runs the
burst once with Salesforce's change-event stream and once without it (the triggers poll every
QuickBooks minute, their shipped ``fallback-interval`` of 1m in scaled time).

**Reconciliation** (``--reconcile 10000 100000``): ``nightly-reconciliation`` over N won
opportunities of one month, each with its invoice, run by ``splice run`` in its own process against
both emulators (another process, seeded with the data; QuickBooks' real limits on, in real time):
wall time and the peak RSS of the runtime process. With ``--repair`` none of the opportunities is
invoiced yet and the run repairs every one (QuickBooks' limits in time scaled by ``--scale``):
its wall time in QuickBooks minutes, metered requests per invoice, failures and duplicates.

    python benchmarks/sync.py --opportunities 1000 --scale 10 --trigger stream polling --json sync.json
    python benchmarks/sync.py --opportunities 0 --reconcile 10000 100000
    python benchmarks/sync.py --opportunities 0 --reconcile 10000 --repair --scale 10

The runtime and ``splice serve``'s app run in this process, the emulators in a child process (as
Salesforce and QuickBooks run elsewhere), over local sockets. On a 2-core machine the emulators
still take CPU the runtime could use, so the fraction is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402
import httpx  # noqa: E402

PROJECT = ROOT / "flows" / "salesforce-quickbooks"
REALM = "9130357766900000"


class CountingApp:
    """Counts the API calls (paths containing ``api_path``) an ASGI app answers, and answers
    ``GET /_bench/stats`` with the counts the burst is measured by (on the emulator's own loop).

    ``metered`` counts as QuickBooks meters: each item of a ``/batch`` call is one request (a
    batch of 30 spends 30 of the realm's 500 a minute); answers 429 (throttled) are not counted.
    """

    def __init__(self, app: Any, stats: Any, api_path: str, count: Any = None) -> None:
        self.app = app
        self.api_calls = 0
        self.metered = 0
        self.stats = stats
        self.count = count
        self.api_path = api_path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in ("/_bench/stats", "/_bench/count"):
            # The count is what the burst polls, ten times a second: it must cost the emulators
            # next to nothing, or the measurement slows what it measures.
            stats = self.count() if scope["path"] == "/_bench/count" else {
                **self.stats(), "api_calls": self.api_calls, "metered": self.metered}
            body = json.dumps(stats).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "http" or self.api_path not in scope["path"]:
            await self.app(scope, receive, send)
            return
        self.api_calls += 1
        received = bytearray()
        status = 0

        async def receive_body() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                received.extend(message.get("body", b""))
            return message

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive_body, send_status)
        if status != 429:
            self.metered += _batch_items(bytes(received)) if scope["path"].endswith("/batch") else 1


def _batch_items(body: bytes) -> int:
    """How many items a ``/batch`` request carries (each is metered like one call)."""
    try:
        return max(1, len(json.loads(body).get("BatchItemRequest") or []))
    except (ValueError, AttributeError):
        return 1


def _seed_opportunities(org: Any, count: int) -> list[str]:
    """``count`` open opportunities with two line items each, over 50 new accounts."""
    entries = [e for e in org.records["PricebookEntry"].values()]
    accounts = [org.create("Account", {"Name": f"Benchmark Account {i:02d}", "BillingCity": "Austin",
                                       "BillingCountry": "USA"}, emit=False)["Id"]
                for i in range(50)]
    ids = []
    for i in range(count):
        opp = org.create("Opportunity", {"Name": f"Benchmark {i:05d}", "AccountId": accounts[i % 50],
                                         "StageName": "Negotiation/Review", "CloseDate": "2026-11-20",
                                         "Pricebook2Id": org.standard_pricebook}, emit=False)
        for j in range(2):
            org.create("OpportunityLineItem", {"OpportunityId": opp["Id"],
                                               "PricebookEntryId": entries[(i + j) % len(entries)]["Id"],
                                               "Quantity": 1 + (i % 7)}, emit=False)
        ids.append(opp["Id"])
    return ids


def _sandboxes(registry: Any = None) -> tuple[Any, Any]:
    """The salesforce and quickbooks sandbox specs (emulator, demo settings), loaded as sandbox
    mode loads them."""
    from runtime.registry import load_registry
    from runtime.sandbox import load_sandbox

    connectors = (registry or load_registry()).connectors
    return load_sandbox(connectors["salesforce"]), load_sandbox(connectors["quickbooks"])


def _serve_burst(opportunities: int, scale: float, sockets: list[Any], serve_url: str,
                 seeded: Any, trigger: str) -> None:
    """In a child process: both emulators with QuickBooks' limits in scaled time, seeded with
    ``opportunities`` open opportunities (their ids go back through ``seeded``); with ``trigger``
    "polling" the Salesforce change-event stream is unavailable, as in orgs without it."""
    from runtime import sandbox as sb

    salesforce, quickbooks = _sandboxes()
    sf_base, qb_base = (f"http://127.0.0.1:{s.getsockname()[1]}" for s in sockets)
    sf_app = salesforce.emulator(demo=True, long_poll_timeout=5.0,
                                 faults={"streaming_unavailable": trigger == "polling"})
    qb_app = quickbooks.emulator(demo=True, rate_limits=True, requests_per_minute=500,
                                 batch_per_minute=40, max_concurrent=10, rate_window=60.0 / scale,
                                 webhook_url=f"{serve_url}/webhooks/quickbooks", webhook_interval=0.5,
                                 faults={"latency": 0.3 / scale})
    qb = qb_app.state.emulator
    company = qb.companies[REALM]

    def stats() -> dict[str, Any]:
        notes = Counter(str(inv.get("PrivateNote", "")).removeprefix("Salesforce Opportunity ")
                        for inv in company.tables["Invoice"].values())
        return {"invoices": len(company.tables["Invoice"]), "throttled": qb.throttle.throttled,
                "doc_numbers": sorted({str(inv.get("DocNumber")) for inv in company.tables["Invoice"].values()}),
                "notes": {k: v for k, v in notes.items() if v > 1}}

    seeded.send(_seed_opportunities(sf_app.state.emulator.org, opportunities))
    emulators = [
        # Salesforce REST calls (the Streaming API's long polls are not counted: they wait, and
        # Salesforce does not count them against the daily API limit either).
        sb.SandboxedConnection("salesforce", "salesforce", sf_base, salesforce.settings(sf_base),
                               CountingApp(sf_app, dict, "/services/data/"), sockets[0]),
        sb.SandboxedConnection("quickbooks", "quickbooks", qb_base, quickbooks.settings(qb_base),
                               CountingApp(qb_app, stats, "/v3/company/",
                                           count=lambda: {"invoices": len(company.tables["Invoice"])}),
                               sockets[1]),
    ]
    anyio.run(sb.serve_emulators, emulators, anyio.Event())


async def burst(opportunities: int, scale: float, store_path: Path, project_dir: Path = PROJECT,
                trigger: str = "stream") -> dict[str, Any]:
    """Close ``opportunities`` at once; measure how fast and how exactly they are invoiced.

    The emulators run in a child process, as Salesforce and QuickBooks run elsewhere: the
    runtime has this process (one core) to itself. With ``trigger`` "polling" the change-event
    stream is unavailable and the triggers poll every QuickBooks minute (their shipped
    ``fallback-interval`` of 1m, in scaled time).
    """
    import multiprocessing

    import uvicorn

    from runtime import sandbox as sb
    from runtime.registry import load_registry
    from runtime.server.app import create_app
    from runtime.service import load_project, open_runtime
    from runtime.store import open_store

    registry = load_registry()
    salesforce, quickbooks = _sandboxes(registry)
    # The start-up catch-up of the nightly reconciliation writes its report next to the store.
    environ = {"RECONCILIATION_REPORT_DIR": str(store_path.parent / "reports"),
               "TRIGGERS_FALLBACK_INTERVAL": f"{60.0 / scale:g}s",
               "TRIGGERS_RETRY_STREAM_AFTER": f"{300.0 / scale:g}s"}
    project, _ = load_project(project_dir, registry=registry, environ=environ)
    sockets = [sb.bind_socket("127.0.0.1", 0) for _ in range(3)]
    serve_url, sf_base, qb_base = (f"http://127.0.0.1:{s.getsockname()[1]}" for s in sockets)
    context = multiprocessing.get_context("fork")
    receive_ids, send_ids = context.Pipe(duplex=False)
    child = context.Process(target=_serve_burst, daemon=True,
                            args=(opportunities, scale, sockets[1:], serve_url, send_ids, trigger))
    child.start()
    for sock in sockets[1:]:
        sock.close()
    ids = receive_ids.recv()
    overrides = {
        # Scaled time applies to everything: the Salesforce connection's own cap too.
        "salesforce": {**salesforce.settings(sf_base), "requests-per-second": 25 * scale},
        # QuickBooks' 500 a minute leave 470 a minute after the budget's burst of 10 and the 20 a
        # batch of 30 may spend before a minute begins; scaled (docs/quickbooks.md).
        "quickbooks": {**quickbooks.settings(qb_base), "requests-per-minute": int(470 * scale) + 30,
                       "batch-per-minute": int(40 * scale), "max-concurrent": 10,
                       "retry-delay": 0.5 / scale},
    }
    store = open_store(f"sqlite:///{store_path}")
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            await anyio.to_thread.run_sync(_wait_until_up, f"{qb_base}/_bench/stats", child,
                                           "burst", 120.0)
            async with open_runtime(project, registry, store=store,
                                    connection_settings=overrides) as runtime:
                server = uvicorn.Server(uvicorn.Config(create_app(runtime, drain_timeout=5.0),
                                                       lifespan="on", log_level="warning",
                                                       timeout_graceful_shutdown=2))
                async with anyio.create_task_group() as served:
                    served.start_soon(server.serve, [sockets[0]])
                    while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
                        await anyio.sleep(0.05)
                    await _settle(runtime.engine)
                    measured = await _measure(http, sf_base, qb_base, ids, scale, runtime.engine)
                    measured["trigger"] = trigger
                    server.should_exit = True
    finally:
        await store.aclose()
        child.terminate()
        child.join(10)
    return measured


def _wait_until_up(url: str, child: Any, what: str, seconds: float) -> None:
    """Until ``url`` answers 200 (the emulators in ``child`` are seeded and serving)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not child.is_alive():
            raise SystemExit(f"{what}: the emulators did not start")
        time.sleep(0.2)


async def _settle(engine: Any, quiet: float = 1.0) -> None:
    """Wait until no flow has run for ``quiet`` seconds (subscriptions made, the start-up catch-up
    of the nightly reconciliation done), so the burst is measured alone."""
    quiet_since = time.monotonic()
    deadline = quiet_since + 300
    while time.monotonic() - quiet_since < quiet and time.monotonic() < deadline:
        await anyio.sleep(0.1)
        if any(limiter.borrowed_tokens for limiter in engine.limiters.values()):
            quiet_since = time.monotonic()


async def _measure(http: httpx.AsyncClient, sf_base: str, qb_base: str, ids: list[str],
                   scale: float, engine: Any) -> dict[str, Any]:
    """Close every opportunity in bursts of 200 and wait until each has its invoice."""

    async def stats() -> dict[str, Any]:
        return (await http.get(f"{qb_base}/_bench/stats")).json()

    async def salesforce_calls() -> int:
        return int((await http.get(f"{sf_base}/_bench/stats")).json()["api_calls"])

    opportunities = len(ids)
    first, sf_first = await stats(), await salesforce_calls()
    token = (await http.post(f"{sf_base}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": "bench",
        "client_secret": "bench"})).json()["access_token"]
    started, cpu_started = time.monotonic(), time.process_time()
    for chunk in range(0, len(ids), 200):
        answer = await http.patch(
            f"{sf_base}/services/data/v66.0/composite/sobjects",
            headers={"Authorization": f"Bearer {token}"},
            json={"allOrNone": True, "records": [
                {"attributes": {"type": "Opportunity"}, "Id": i, "StageName": "Closed Won"}
                for i in ids[chunk:chunk + 200]]})
        answer.raise_for_status()
    wanted = {"SF-" + i[:15] for i in ids}
    wanted_ids = set(ids)
    deadline = started + 600.0
    done = 0
    while done < len(wanted) and time.monotonic() < deadline:
        await anyio.sleep(0.1)
        # The invoices are looked at one by one only once there are enough of them.
        made = (await http.get(f"{qb_base}/_bench/count")).json()["invoices"] - first["invoices"]
        if made >= len(wanted) - done:
            done = len(wanted.intersection((await stats())["doc_numbers"]))
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    # Then until the flows are quiet: what the invoices still cost afterwards (write-backs, the
    # status sync, echoes of write-backs a poll picks up) counts too. Quiet = no flow ran for two
    # poll intervals (at least 2 s; a duplicate would show up meanwhile); the polls themselves
    # go on, and those made meanwhile count.
    await _settle(engine, quiet=max(2.0, 2 * 60.0 / scale))
    last = await stats()
    calls = last["metered"] - first["metered"]
    http_calls = last["api_calls"] - first["api_calls"]
    # The closing calls above are the benchmark's, not the flows'.
    sf_calls = await salesforce_calls() - sf_first - len(range(0, len(ids), 200))
    qb_minutes = elapsed * scale / 60.0
    per_invoice = calls / max(done, 1)
    rate = done / qb_minutes
    bound = 500.0 / per_invoice
    # QuickBooks' own bound: one metered create per invoice, 500 metered requests a minute.
    api_bound = 500.0
    return {
        "opportunities": opportunities, "invoiced": done,
        "new_invoices": last["invoices"] - first["invoices"],
        "duplicates": sum(n - 1 for i, n in last["notes"].items() if i in wanted_ids),
        "scale": scale, "wall_seconds": round(elapsed, 2),
        "quickbooks_minutes": round(qb_minutes, 2),
        "invoices_per_quickbooks_minute": round(rate, 1),
        "quickbooks_requests": calls, "requests_per_invoice": round(per_invoice, 2),
        "quickbooks_http_calls": http_calls,
        "quickbooks_http_calls_per_invoice": round(http_calls / max(done, 1), 2),
        "salesforce_requests": sf_calls,
        "salesforce_requests_per_invoice": round(sf_calls / max(done, 1), 2),
        "limit_bound_invoices_per_minute": round(bound, 1),
        "fraction_of_bound": round(rate / bound, 3),
        "fraction_of_api_bound": round(rate / api_bound, 3),
        "http_429": last["throttled"] - first["throttled"],
        "runtime_cpu_ms_per_invoice": round(cpu * 1000 / max(done, 1), 1),
    }


def _serve_seeded(size: int, sf_port: int, qb_port: int, missing: bool, scale: float) -> None:
    """In a child process: both emulators, seeded with ``size`` won opportunities, each with its
    invoice, or (``missing``) none invoiced yet; QuickBooks' limits in time scaled by ``scale``."""
    from decimal import Decimal

    from runtime import sandbox as sb

    salesforce, quickbooks = _sandboxes()
    sf_app = salesforce.emulator(long_poll_timeout=5.0)
    qb_app = quickbooks.emulator(rate_limits=True, requests_per_minute=500, batch_per_minute=40,
                                 max_concurrent=10, rate_window=60.0 / scale,
                                 # The repair's creates answer in QuickBooks' time, scaled.
                                 faults={"latency": 0.3 / scale} if missing else {})
    org, company = sf_app.state.emulator.org, qb_app.state.emulator.companies[REALM]
    account = org.create("Account", {"Name": "Cool Cars", "QB_Customer_Id__c": "13"}, emit=False)
    now = company.now()
    for i in range(size):
        amount = Decimal(100 + i % 900)
        fields = {"Name": f"Reconcile {i:06d}", "AccountId": account["Id"], "StageName": "Closed Won",
                  "CloseDate": f"2026-10-{1 + i % 28:02d}", "Amount": float(amount)}
        if missing:
            org.create("Opportunity", fields, emit=False)
            continue
        invoice_id = str(company.next_id)
        company.next_id += 1
        opp = org.create("Opportunity", {**fields, "QuickBooks_Invoice_Id__c": invoice_id,
                                         "Payment_Status__c": "Unpaid", "Amount_Paid__c": 0.0},
                         emit=False)
        company.tables["Invoice"][invoice_id] = {
            "Id": invoice_id, "DocNumber": "SF-" + opp["Id"][:15], "TxnDate": opp["CloseDate"],
            "CustomerRef": {"value": "13", "name": "Cool Cars"}, "TotalAmt": amount,
            "Balance": amount, "Line": [], "LinkedTxn": [], "SyncToken": "0", "domain": "QBO",
            "sparse": False, "MetaData": {"CreateTime": now, "LastUpdatedTime": now}}
    sockets = [sb.bind_socket("127.0.0.1", port) for port in (sf_port, qb_port)]
    bases = [f"http://127.0.0.1:{port}" for port in (sf_port, qb_port)]

    def stats() -> dict[str, Any]:
        notes = Counter(str(inv.get("PrivateNote", "")) for inv in company.tables["Invoice"].values())
        return {"invoices": len(company.tables["Invoice"]), "throttled": qb_app.state.emulator.throttle.throttled,
                "duplicates": sum(n - 1 for note, n in notes.items() if note and n > 1)}

    emulators = [
        sb.SandboxedConnection("salesforce", "salesforce", bases[0], salesforce.settings(bases[0]),
                               CountingApp(sf_app, dict, "/services/data/"), sockets[0]),
        sb.SandboxedConnection("quickbooks", "quickbooks", bases[1], quickbooks.settings(bases[1]),
                               CountingApp(qb_app, stats, "/v3/company/"), sockets[1]),
    ]
    anyio.run(sb.serve_emulators, emulators, anyio.Event())


def reconcile(size: int, *, repair: bool = False, scale: float = 1.0) -> dict[str, Any]:
    """One reconciliation run over ``size`` opportunities: wall time and the runtime's peak RSS.
    With ``repair`` none of them is invoiced yet and the run invoices every one (QuickBooks' limits
    in time scaled by ``scale``, the connection's budget likewise)."""
    import multiprocessing

    import psutil

    from runtime.sandbox import bind_socket

    ports = []
    for _ in range(2):
        probe = bind_socket("127.0.0.1", 0)
        ports.append(probe.getsockname()[1])
        probe.close()
    child = multiprocessing.get_context("fork").Process(target=_serve_seeded, daemon=True,
                                                        args=(size, *ports, repair, scale))
    child.start()
    sf, qb = (f"http://127.0.0.1:{port}" for port in ports)
    try:
        _wait_until_up(f"{qb}/_bench/stats", child, f"reconcile {size}", 900.0)
        before = httpx.get(f"{qb}/_bench/stats").json()
        env = {**os.environ, "SALESFORCE_LOGIN_URL": sf, "SALESFORCE_CLIENT_ID": "bench",
               "SALESFORCE_CLIENT_SECRET": "bench", "QUICKBOOKS_CLIENT_ID": "emulator-client",
               "QUICKBOOKS_CLIENT_SECRET": "emulator-secret", "QUICKBOOKS_REALM_ID": REALM,
               "QUICKBOOKS_REFRESH_TOKEN": "emulator-refresh-token", "QUICKBOOKS_BASE_URL": qb,
               "QUICKBOOKS_TOKEN_URL": f"{qb}/oauth2/v1/tokens/bearer",
               "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN": "emulator-verifier",
               # QuickBooks' 500 a minute leave 470 a minute after the budget's burst of 10 and the
               # 20 a batch of 30 may spend before a minute begins; scaled (docs/quickbooks.md).
               "QUICKBOOKS_REQUESTS_PER_MINUTE": str(int(470 * scale) + 30),
               "QUICKBOOKS_BATCH_PER_MINUTE": str(int(40 * scale))}
        with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "run.log", "w+") as log:
            started = time.monotonic()
            # The console (a progress line per chunk) goes to a file: a pipe read only at the
            # end would fill up and stall the run.
            proc = subprocess.Popen(
                [sys.executable, "-m", "runtime.cli", "run", "nightly-reconciliation", "-p",
                 str(PROJECT), "--input", "-"], cwd=tmp, env=env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, text=True)
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"from": "2026-10-01", "to": "2026-10-31", "repair": repair}))
            proc.stdin.close()
            watched = psutil.Process(proc.pid)
            peak = 0
            while proc.poll() is None:
                try:
                    peak = max(peak, watched.memory_info().rss)
                except psutil.NoSuchProcess:
                    break
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            out = proc.stdout.read() if proc.stdout else ""
            log.seek(0)
            err = log.read()
        after = httpx.get(f"{qb}/_bench/stats").json()
        if proc.returncode != 0 and not repair:
            raise SystemExit(f"reconcile {size}: splice run failed: {err[-2000:]}")
        try:
            summary = json.loads(out)
        except ValueError:
            raise SystemExit(f"reconcile {size}: splice run failed: {err[-2000:]}") from None
    finally:
        child.terminate()
        child.join(10)
    row: dict[str, Any] = {
        "opportunities": size, "checked": summary.get("checked"), "repair": repair,
        "findings": {k: summary.get(k) for k in ("missing", "duplicated", "amountMismatch",
                                                    "statusMismatch", "unlinked")},
        "wall_seconds": round(elapsed, 1), "peak_rss_mb": round(peak / 2**20, 1)}
    if repair:
        made = after["invoices"] - before["invoices"]
        metered = after["metered"] - before["metered"]
        row.update({"scale": scale, "quickbooks_minutes": round(elapsed * scale / 60.0, 1),
                    "invoices_made": made, "duplicates": after["duplicates"],
                    "repairs_failed": (summary.get("repairs") or {}).get("failed"),
                    "quickbooks_requests_per_invoice": round(metered / max(made, 1), 2),
                    "http_429": after["throttled"] - before["throttled"]})
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opportunities", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=10.0,
                        help="QuickBooks minutes last 60/scale seconds (default 10: 6 s)")
    parser.add_argument("--project", type=Path, default=PROJECT,
                        help="the project to run (default: flows/salesforce-quickbooks)")
    parser.add_argument("--reconcile", type=int, nargs="*", default=[], metavar="N",
                        help="also time the nightly reconciliation over N opportunities")
    parser.add_argument("--repair", action="store_true",
                        help="with --reconcile: no opportunity is invoiced yet, and the run repairs "
                             "(invoices) every one, in the time scaled by --scale")
    parser.add_argument("--trigger", nargs="+", choices=("stream", "polling"), default=["stream"],
                        help="how Salesforce changes arrive: the change-event stream, or polling "
                             "(the stream unavailable); several: one burst each")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                                          f"{platform.python_version()}"}
    for size in args.reconcile:
        row = reconcile(size, repair=args.repair, scale=args.scale if args.repair else 1.0)
        results.setdefault("reconcile", []).append(row)
        print(f"reconcile: {row['opportunities']} opportunities, {row['checked']} checked in "
              f"{row['wall_seconds']} s, peak RSS {row['peak_rss_mb']} MB, findings {row['findings']}")
        if args.repair:
            print(f"  repaired: {row['invoices_made']} invoices made in {row['quickbooks_minutes']} "
                  f"QuickBooks minutes (time scaled x{row['scale']:g}), "
                  f"{row['quickbooks_requests_per_invoice']} metered QuickBooks requests per invoice, "
                  f"{row['repairs_failed']} failed, duplicates {row['duplicates']}, "
                  f"429 answers {row['http_429']}")
    if not args.opportunities:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        return 0
    for trigger in args.trigger:
        with tempfile.TemporaryDirectory() as tmp:
            b = anyio.run(burst, args.opportunities, args.scale, Path(tmp) / "store.db",
                          args.project, trigger)
        results.setdefault("bursts", []).append(b)
        results.setdefault("burst", b)  # the first burst, for tools that read one
        print(f"burst ({trigger}): {b['invoiced']}/{b['opportunities']} invoiced in "
              f"{b['wall_seconds']} s = {b['quickbooks_minutes']} QuickBooks minutes (time scaled "
              f"x{b['scale']:g}: 500 requests per {60 / b['scale']:g} s, 10 in flight, "
              f"{300 / b['scale']:g} ms per call)")
        print(f"  {b['invoices_per_quickbooks_minute']} invoices per QuickBooks minute; "
              f"{b['fraction_of_api_bound'] * 100:.1f}% of QuickBooks' bound (500 a minute); "
              f"{b['requests_per_invoice']} metered QuickBooks requests per invoice "
              f"({b['quickbooks_http_calls_per_invoice']} HTTP calls) -> limit-bound maximum "
              f"{b['limit_bound_invoices_per_minute']} per minute, reached "
              f"{b['fraction_of_bound'] * 100:.1f}%; {b['salesforce_requests_per_invoice']} "
              f"Salesforce requests per invoice; 429 answers: {b['http_429']}; duplicates: "
              f"{b['duplicates']}; runtime CPU {b['runtime_cpu_ms_per_invoice']} ms per invoice")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The connector against the emulator with faults switched on: every record arrives exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.salesforce.emulator import create_app
from connectors.salesforce.errors import SalesforceError
from connectors.salesforce.plugin import CONNECTOR

pytestmark = pytest.mark.anyio

FAULTS = {"unavailable_rate": 0.1, "lock_rate": 0.15, "token_expiry_every": 9, "latency": 0.001}
SETTINGS = {"auth": "client-credentials", "login-url": "https://acme.my.salesforce.com", "client-id": "cid",
            "client-secret": "fault-test-secret", "retries": 6, "retry-delay": 0.001, "lock-retries": 10}


async def test_writes_and_reads_survive_faults_exactly_once(store: Any, make_connection_context: Any) -> None:
    """503s, row locks, expiring sessions and latency: no record lost, none written twice."""
    app = create_app(page_size=7, faults=FAULTS)
    emu = app.state.emulator
    async with CONNECTOR.connection.connect(dict(SETTINGS), make_connection_context(app, store)) as client:
        for i in range(15):
            await client.create("Account", {"Name": f"Single {i}", "QB_Customer_Id__c": f"S{i}"})
        for i in range(5):
            await client.upsert("Account", "QB_Customer_Id__c", f"S{i}", {"Phone": f"555-{i}"})
        from connectors.salesforce.composite import collection_write

        results = await collection_write(client, "create", [{"Name": f"Bulk {i}"} for i in range(230)],
                                         sobject="Account")
        assert all(r["success"] for r in results)
        stream = await client.query("SELECT Id, Name, Phone FROM Account ORDER BY Name")
        seen = [r async for r in stream]
    names = [r["Name"] for r in seen]
    assert len(names) == len(set(names)) == 245
    assert len(emu.org.records["Account"]) == 245
    assert sum(1 for r in seen if r["Phone"]) == 5
    served = emu.faults.served
    assert served["unavailable"] > 0 and served["lock"] > 0 and served["token_expiry"] > 0


async def test_persistent_unavailability_surfaces_as_retryable(store: Any, make_connection_context: Any) -> None:
    """When 503 outlasts the transport's retries the flow sees a retryable SALESFORCE error."""
    app = create_app(faults={"unavailable": 100})
    async with CONNECTOR.connection.connect({**SETTINGS, "retries": 1}, make_connection_context(app, store)) as client:
        with pytest.raises(SalesforceError) as failed:
            await client.create("Account", {"Name": "x"})
    assert failed.value.error_type == "SALESFORCE:SERVER_UNAVAILABLE" and failed.value.retryable
    assert app.state.emulator.org.records["Account"] == {}


async def test_lock_contention_beyond_retries_is_retryable(store: Any, make_connection_context: Any) -> None:
    """UNABLE_TO_LOCK_ROW that does not clear is typed and retryable (the write did not happen)."""
    app = create_app(faults={"lock": 100})
    async with CONNECTOR.connection.connect({**SETTINGS, "lock-retries": 1}, make_connection_context(app, store)) as client:
        with pytest.raises(SalesforceError) as failed:
            await client.create("Account", {"Name": "x"})
    assert failed.value.error_type == "SALESFORCE:UNABLE_TO_LOCK_ROW" and failed.value.retryable


async def test_changes_source_delivers_exactly_once_under_faults(store: Any, make_connection_context: Any,
                                                                 source_context: Any) -> None:
    """Polling through 503s and expiring sessions while records keep changing: each change once."""
    from connectors.salesforce.sources import CHANGES
    from runtime.testing import typed_call

    run_changes = typed_call(CHANGES)

    app = create_app(page_size=7, faults={"unavailable_rate": 0.15, "token_expiry_every": 5})
    org = app.state.emulator.org
    for i in range(30):
        org.create("Contact", {"LastName": f"C{i:02d}"})
    async with CONNECTOR.connection.connect(dict(SETTINGS), make_connection_context(app, store)) as client:
        ctx = source_context(client, store, polls=4)

        async def between(poll: int) -> None:
            for i in range(poll * 3):
                org.create("Contact", {"LastName": f"P{poll}-{i}"})

        ctx.on_sleep = between
        await run_changes(ctx, {"object": "Contact", "fields": ["LastName"], "interval": 0, "overlap": "5m",
                                "batch-size": 8})
    delivered = [e.payload["LastName"] for e in ctx.events]
    expected = [f"C{i:02d}" for i in range(30)] + [f"P{p}-{i}" for p in (1, 2, 3) for i in range(p * 3)]
    assert sorted(delivered) == sorted(expected)
    assert app.state.emulator.faults.served["unavailable"] > 0

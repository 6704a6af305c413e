"""Connector calls replayed from cassettes through the whole transport stack.

The cassettes were recorded from the emulator (``--record-mode=once``, see docs/quickbooks.md for
re-recording against a QuickBooks sandbox company). vcrpy patches httpx's innermost transports,
so a replay still runs the connector's retry, tracing and rate-limit layers and its OAuth flow;
only the network (here: nothing at all, ``transport=None``) is replaced by the recording.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.quickbooks.emulator import create_app
from connectors.quickbooks.plugin import CONNECTOR
from runtime.errors import SpliceError
from runtime.store import ObjectStore
from tests.support.quickbooks import (
    CLIENT_SECRET,
    REALM,
    RECORDED_REALM,
    SEED_REFRESH_TOKEN,
    connection_context,
    qb_settings,
    run_op,
)

CASSETTES = Path(__file__).parent / "cassettes"


#: Set all four to record against a QuickBooks sandbox company instead of the emulator.
SANDBOX_ENV = ("QUICKBOOKS_CLIENT_ID", "QUICKBOOKS_CLIENT_SECRET", "QUICKBOOKS_REALM_ID",
               "QUICKBOOKS_REFRESH_TOKEN")


def _setup(record_mode: str, store: ObjectStore) -> tuple[Any, dict[str, Any], Any]:
    if record_mode == "none":  # replay: no emulator and no network; the cassette answers
        return None, qb_settings(**{"realm-id": RECORDED_REALM}), connection_context(None, store)
    if all(os.environ.get(name) for name in SANDBOX_ENV):
        settings = {"client-id": os.environ["QUICKBOOKS_CLIENT_ID"],
                    "client-secret": os.environ["QUICKBOOKS_CLIENT_SECRET"],
                    "realm-id": os.environ["QUICKBOOKS_REALM_ID"],
                    "refresh-token": os.environ["QUICKBOOKS_REFRESH_TOKEN"],
                    "environment": "sandbox"}
        return None, settings, connection_context(None, store)
    app = create_app(refresh_token=SEED_REFRESH_TOKEN)
    return app, qb_settings(), connection_context(app, store)


@pytest.mark.vcr
@pytest.mark.block_network  # in replay: any real socket would fail the test
@pytest.mark.anyio
async def test_customer_invoice_and_faults_replay(record_mode: str, store: ObjectStore) -> None:
    """Refresh, find-or-create, invoice with Decimal money, paged query, 6240; from the emulator
    also a 429 (XML body, retried) and an expired token (401, refreshed, replayed)."""
    app, settings, ctx = _setup(record_mode, store)
    async with CONNECTOR.connection.connect(settings, ctx) as qb:
        (hours,) = await run_op("query", qb, store, query="select * from Item where Name = 'Hours'")
        customer = await run_op("find-or-create", qb, store, record={"DisplayName": "O'Neil Cassettes"})
        invoice = await run_op("create", qb, store, entity="Invoice", idempotency_key="opp-cassette-1",
                               record={"CustomerRef": {"value": customer["Id"]}, "DocNumber": "CAS-1",
                                       "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 0,
                                                 "SalesItemLineDetail": {
                                                     "ItemRef": {"value": hours["Id"]},
                                                     "Qty": Decimal("128.350"),
                                                     "UnitPrice": Decimal("14.50")}}]})
        if app is not None:
            app.state.emulator.faults.update({"throttle_next": 1})
        rows = await run_op("query", qb, store, query="select * from Invoice where DocNumber = :d",
                            binds={"d": "CAS-1"})
        with pytest.raises(SpliceError) as dup:
            await run_op("create", qb, store, entity="Customer", idempotency_key="dup-cassette",
                         record={"DisplayName": "Cool Cars"})
        if app is not None:
            app.state.emulator.faults.update({"expire_tokens": True})
        again = await run_op("get", qb, store, entity="Invoice", id=invoice["Id"])
    assert invoice["TotalAmt"] == Decimal("1861.08")
    assert [r["Id"] for r in rows] == [invoice["Id"]]
    assert dup.value.error_type == "QUICKBOOKS:DUPLICATE_NAME"
    assert again["Balance"] == Decimal("1861.08")
    assert qb.tokens.refresh_count >= 1


def test_cassettes_hold_no_secrets_or_realm_ids() -> None:
    """Tokens, client secrets, refresh tokens and the company id were filtered out."""
    files = list(CASSETTES.rglob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text()
        for secret in (CLIENT_SECRET, SEED_REFRESH_TOKEN, REALM, "eyJ", "Bearer ", "Basic "):
            assert secret not in text, (path.name, secret)
        assert RECORDED_REALM in text


@pytest.mark.vcr(match_on=("method", "path"))  # changedSince depends on the clock: match in order
@pytest.mark.block_network
@pytest.mark.anyio
async def test_batch_and_cdc_replay(record_mode: str, store: ObjectStore) -> None:
    """A batch with one duplicate, then CDC sees the new customers."""
    _app, settings, ctx = _setup(record_mode, store)
    since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat(timespec="seconds")
    async with CONNECTOR.connection.connect(settings, ctx) as qb:
        results = await run_op("batch", qb, store, idempotency_key="cassette-batch", items=[
            {"operation": "create", "entity": "Customer", "record": {"DisplayName": name}}
            for name in ("Cassette Batch A", "Cassette Batch B", "Cool Cars")])
        changes = await run_op("cdc", qb, store, entities=["Customer"], changed_since=since)
    assert [r["ok"] for r in results] == [True, True, False]
    assert results[2]["error"]["type"] == "QUICKBOOKS:DUPLICATE_NAME"
    names = {c.get("DisplayName") for c in changes["Customer"]}
    assert {"Cassette Batch A", "Cassette Batch B"} <= names

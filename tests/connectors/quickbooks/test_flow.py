"""A YAML flow calling quickbooks operations through the runtime's engine, against the emulator."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

import dsl
from connectors.quickbooks.emulator import create_app
from runtime.message import Event
from runtime.registry import load_registry
from runtime.service import open_runtime
from runtime.store import DeadLetterQueue, open_store
from tests.support.quickbooks import BASE, CLIENT_ID, CLIENT_SECRET, REALM, SEED_REFRESH_TOKEN

pytestmark = pytest.mark.anyio

CONNECTIONS = f"""
connections:
  qbo:
    connector: quickbooks
    client-id: {CLIENT_ID}
    client-secret: {CLIENT_SECRET}
    realm-id: "{REALM}"
    refresh-token: {SEED_REFRESH_TOKEN}
    base-url: {BASE}
    token-url: {BASE}/oauth2/v1/tokens/bearer
"""

FLOW = """
flow: opportunity-to-invoice
steps:
  - quickbooks.find-or-create:
      record: { DisplayName: "#[payload.account]" }
      external-key: "#[payload.accountId]"
    target: customer
  - quickbooks.query:
      query: "select * from Item where Name = :name"
      binds: { name: "#[payload.product]" }
    target: items
  - quickbooks.create:
      entity: Invoice
      idempotency-key: "#[ 'opp-' & payload.id ]"
      record:
        CustomerRef: { value: "#[vars.customer.Id]" }
        DocNumber: "#[payload.id]"
        Line:
          - DetailType: SalesItemLineDetail
            SalesItemLineDetail:
              ItemRef: { value: "#[vars.items[0].Id]" }
              Qty: "#[payload.quantity]"
              UnitPrice: "#[payload.price]"
on-error:
  - when: QUICKBOOKS:VALIDATION
    then: dead-letter
"""


async def test_a_flow_invoices_an_opportunity_once(tmp_path: Path) -> None:
    """Run twice with the same event: one customer, one invoice, money exact; a bad price is
    a QUICKBOOKS:VALIDATION error, dead-lettered as the flow says."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "splice.yaml").write_text(textwrap.dedent(CONNECTIONS))
    (root / "opportunity-to-invoice.yaml").write_text(textwrap.dedent(FLOW))
    registry = load_registry()
    project = dsl.load_project(root, vocabulary=registry, environ={})
    app = create_app(refresh_token=SEED_REFRESH_TOKEN)
    store = open_store("memory://")
    event = {"id": "0061x000ABC", "account": "Flow O'Connor", "accountId": "001A",
             "product": "Hours", "quantity": 128.35, "price": 14.5}
    outcomes: list[Any] = []
    try:
        async with open_runtime(project, registry, store=store,
                                transports={"quickbooks": httpx.ASGITransport(app=app)}) as rt:
            for _ in range(2):
                outcomes.append(await rt.engine.run("opportunity-to-invoice", Event(payload=event)))
            bad = await rt.engine.run("opportunity-to-invoice",
                                      Event(payload={**event, "id": "bad", "price": "12,50"}))
            letters = await DeadLetterQueue(store).list(flow="opportunity-to-invoice")
    finally:
        await store.aclose()
    first, second = (o.message.payload for o in outcomes)
    assert first == second
    assert first["TotalAmt"] == Decimal("1861.08")
    company = app.state.emulator.companies[REALM]
    assert [i["DocNumber"] for i in company.tables["Invoice"].values()] == ["0061x000ABC"]
    assert [c["DisplayName"] for c in company.tables["Customer"].values()].count("Flow O'Connor") == 1
    assert bad.status == "dead-lettered"
    assert bad.error is not None and bad.error.error_type == "QUICKBOOKS:VALIDATION"
    assert len(letters) == 1

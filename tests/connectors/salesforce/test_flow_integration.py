"""The connector inside the runtime: a project whose flow is triggered by ``salesforce.changes`` and
writes back with ``salesforce.update`` / ``salesforce.query``, against the emulator in process."""

from __future__ import annotations

import textwrap
from pathlib import Path

import anyio
import httpx
import pytest

import connectors.salesforce.plugin as salesforce_plugin
import dsl
from connectors.salesforce.emulator import create_app
from runtime.message import Event
from runtime.registry import load_registry
from runtime.service import open_runtime
from runtime.testing import wait_until

pytestmark = pytest.mark.anyio

PROJECT = """
connections:
  salesforce:
    connector: salesforce
    auth: client-credentials
    login-url: https://acme.my.salesforce.com
    client-id: flow-client
    client-secret: flow-client-secret
    retry-delay: 10ms
"""

INVOICE_FLOW = """
flow: invoice-won-opportunities
trigger:
  salesforce.changes:
    connection: salesforce
    object: Opportunity
    fields: [Name, Amount, Invoice_Status__c]
    where: "IsWon = true AND Invoice_Status__c = null"
    interval: 50ms
    overlap: 1m
steps:
  - salesforce.update:
      connection: salesforce
      object: Opportunity
      id: "#[payload.Id]"
      record: { Invoice_Status__c: "Invoiced", QuickBooks_Invoice_Number__c: "#['INV-' & payload.Name]" }
"""

LOOKUP_FLOW = """
flow: lookup
steps:
  - salesforce.query:
      connection: salesforce
      query: "SELECT Id, Name FROM Account WHERE Name = :name"
      binds: { name: "#[payload.name]" }
  - transform: '$count($)'
"""


async def test_changes_trigger_runs_flow_and_writes_back(tmp_path: Path) -> None:
    """Every won opportunity is invoiced exactly once; open ones are left alone."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "splice.yaml").write_text(textwrap.dedent(PROJECT))
    (root / "invoice.yaml").write_text(textwrap.dedent(INVOICE_FLOW))
    (root / "lookup.yaml").write_text(textwrap.dedent(LOOKUP_FLOW))
    registry = load_registry([salesforce_plugin], load_entry_points=False)
    project = dsl.load_project(root, vocabulary=registry, environ={})
    app = create_app(page_size=3)
    org = app.state.emulator.org
    for i in range(5):
        org.create("Opportunity", {"Name": f"Deal {i}", "StageName": "Closed Won" if i % 2 == 0 else "Prospecting",
                                   "CloseDate": "2026-03-31"})
    org.create("Account", {"Name": "O'Brien & Sons"})
    async with open_runtime(project, registry, transports={"salesforce": httpx.ASGITransport(app=app)}) as runtime:
        lookup = await runtime.engine.run("lookup", Event(payload={"name": "O'Brien & Sons"}))
        assert lookup.status == "completed" and lookup.message.payload == 1
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run_triggers)
                await wait_until(lambda: len([o for o in org.records["Opportunity"].values()
                                              if o["Invoice_Status__c"]]) == 3, what="three invoices")
                # A few more polls (each spends API requests): nothing may run twice.
                requests = app.state.emulator.request_count
                await wait_until(lambda: app.state.emulator.request_count >= requests + 3,
                                 what="more polls")
                runtime.request_stop()
        status = await runtime.status()
    invoiced = sorted(o["QuickBooks_Invoice_Number__c"] for o in org.records["Opportunity"].values()
                      if o["Invoice_Status__c"])
    assert invoiced == ["INV-Deal 0", "INV-Deal 2", "INV-Deal 4"]
    updates = [e for e in org.events if e["payload"]["ChangeEventHeader"]["changeType"] == "UPDATE"]
    assert len(updates) == 3
    assert status["salesforce"]["api_usage"]["max"] == 15000

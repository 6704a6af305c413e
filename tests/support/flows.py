"""Helpers of the flow tests: open the shipped project against both emulators, seed Salesforce."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import dsl
from connectors.quickbooks.emulator import DEFAULT_REALM
from connectors.quickbooks.emulator import create_app as quickbooks_app
from connectors.salesforce.emulator import create_app as salesforce_app
from runtime.message import Event, Outcome
from runtime.registry import load_registry
from runtime.service import open_runtime
from runtime.store import ObjectStore, open_store

PROJECT = Path(__file__).resolve().parents[2] / "flows" / "salesforce-quickbooks"
REALM = DEFAULT_REALM
RECORDED_REALM = "1234567890"
SEED_REFRESH_TOKEN = "RT-flows-0000000000000001"
QB_BASE = "http://quickbooks.test"
SF_LOGIN = "https://acme.my.salesforce.com"
API_KEY = "test-customer-360-key"

#: The documented environment overrides that point the project at the emulators.
ENVIRON: dict[str, str] = {
    "SALESFORCE_LOGIN_URL": SF_LOGIN,
    "SALESFORCE_CLIENT_ID": "flows-client",
    "SALESFORCE_CLIENT_SECRET": "flows-secret",
    "QUICKBOOKS_CLIENT_ID": "emulator-client",
    "QUICKBOOKS_CLIENT_SECRET": "emulator-secret",
    "QUICKBOOKS_REALM_ID": REALM,
    "QUICKBOOKS_REFRESH_TOKEN": SEED_REFRESH_TOKEN,
    "QUICKBOOKS_BASE_URL": QB_BASE,
    "QUICKBOOKS_TOKEN_URL": f"{QB_BASE}/oauth2/v1/tokens/bearer",
    "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN": "emulator-verifier",
    "CUSTOMER_360_API_KEY": API_KEY,
}


@dataclass
class Integration:
    """The opened project, its emulators and what tests need to seed and inspect them."""

    runtime: Any
    sf_app: Any
    qb_app: Any
    store: ObjectStore
    pricebook_entries: dict[str, str] = field(default_factory=dict)

    @property
    def org(self) -> Any:
        """The emulated Salesforce org (its Python object)."""
        return self.sf_app.state.emulator.org

    @property
    def company(self) -> Any:
        """The emulated QuickBooks company."""
        return self.qb_app.state.emulator.companies[REALM]

    def table(self, entity: str) -> list[dict[str, Any]]:
        """Rows of one QuickBooks entity, in id order."""
        return sorted(self.company.tables[entity].values(), key=lambda r: int(r["Id"])
                      if str(r["Id"]).isdigit() else 0)

    async def run(self, flow: str, payload: Any, attributes: Mapping[str, Any] | None = None) -> Outcome:
        """One execution of ``flow`` for ``payload``."""
        return await self.runtime.engine.run(flow, Event(payload=payload, attributes=dict(attributes or {})))

    # ------------------------------------------------------------- Salesforce seeding

    def account(self, name: str, **fields: Any) -> str:
        """Create an Account; returns its id."""
        return str(self.org.create("Account", {"Name": name, **fields})["Id"])

    def product(self, name: str, price: float, **fields: Any) -> str:
        """Create a Product2 with a standard price; returns its id."""
        product = self.org.create("Product2", {"Name": name, **fields})
        entry = self.org.create("PricebookEntry", {"Pricebook2Id": self.org.standard_pricebook,
                                                   "Product2Id": product["Id"], "UnitPrice": price})
        self.pricebook_entries[str(product["Id"])] = str(entry["Id"])
        return str(product["Id"])

    def opportunity(self, account_id: str, lines: list[dict[str, Any]], *, stage: str = "Closed Won",
                    close_date: str = "2026-03-31", name: str = "Deal") -> str:
        """Create an Opportunity with line items (``{product, Quantity, UnitPrice?, Discount?}``)."""
        opp = self.org.create("Opportunity", {"Name": name, "AccountId": account_id, "StageName": "Prospecting",
                                              "CloseDate": close_date,
                                              "Pricebook2Id": self.org.standard_pricebook})
        for order, line in enumerate(lines, start=1):
            body = {k: v for k, v in line.items() if k != "product"}
            self.org.create("OpportunityLineItem", {"OpportunityId": opp["Id"], "SortOrder": order,
                                                    "PricebookEntryId": self.pricebook_entries[line["product"]],
                                                    **body})
        if stage != "Prospecting":
            self.org.update("Opportunity", opp["Id"], {"StageName": stage})
        return str(opp["Id"])

    def record(self, obj: str, record_id: str) -> dict[str, Any]:
        """The current Salesforce record."""
        found = self.org.find(obj, record_id)
        assert found is not None, f"{obj} {record_id} not found"
        return dict(found)


def load(environ: Mapping[str, str] | None = None) -> tuple[Any, Any]:
    """The registry and the project as ``splice serve --env dev`` would load them."""
    registry = load_registry()
    project = dsl.load_project(PROJECT, vocabulary=registry, env="dev",
                               environ={**ENVIRON, **(environ or {})})
    return registry, project


@asynccontextmanager
async def open_integration(environ: Mapping[str, str] | None = None, *,
                           store: ObjectStore | None = None, emulators: bool = True,
                           salesforce_options: Mapping[str, Any] | None = None
                           ) -> AsyncIterator[Integration]:
    """The project opened against two fresh emulators mounted in process.

    ``emulators=False`` (cassette replay) leaves the connections without a transport: the
    recording answers, and the realm id is the one cassettes carry.
    """
    if not emulators:
        environ = {"QUICKBOOKS_REALM_ID": RECORDED_REALM, **(environ or {})}
    # Running the triggers runs nightly-reconciliation at once (its schedule catches up): its
    # reports go to a temporary directory unless the test names one.
    with tempfile.TemporaryDirectory(prefix="splice-reports-") as reports:
        registry, project = load({"RECONCILIATION_REPORT_DIR": reports, **(environ or {})})
        sf_app = salesforce_app(**dict(salesforce_options or {}))
        qb_app = quickbooks_app(refresh_token=SEED_REFRESH_TOKEN)
        own_store = store is None
        store = store or open_store("memory://")
        transports = {"salesforce": httpx.ASGITransport(app=sf_app),
                      "quickbooks": httpx.ASGITransport(app=qb_app)} if emulators else {}
        try:
            async with open_runtime(project, registry, store=store, transports=transports) as runtime:
                yield Integration(runtime=runtime, sf_app=sf_app, qb_app=qb_app, store=store)
        finally:
            if own_store:
                await store.aclose()

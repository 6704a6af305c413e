"""The shipped project under Splice's pytest plugin, and how its flow tests seed the emulators.

The flow tests load ``flows/salesforce-quickbooks`` with the plugin's fixtures (``splice_project``,
``splice_runtime``; see ``tests/flows/conftest.py``) as any user's project is tested; this module
adds only what is particular to this project: seeding the Salesforce org and reading the QuickBooks
company (:class:`Integration`), and the environment the project is loaded with.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import dsl
from connectors.quickbooks.emulator import DEFAULT_REALM
from runtime.pytest_plugin import FlowRun, SpliceProject
from runtime.registry import load_registry
from runtime.store import ObjectStore

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


#: The emulators the flow tests start from: empty org, the QuickBooks company's base records, no
#: sandbox demo data (``splice_emulator_options``).
EMULATOR_OPTIONS: dict[str, dict[str, Any]] = {"salesforce": {}, "quickbooks": {}}


class Integration:
    """The project under test (a plugin :class:`SpliceProject` with its runtime open in the test's
    event loop), and what the tests need to seed and inspect its emulators."""

    def __init__(self, project: SpliceProject) -> None:
        self.project = project
        self.pricebook_entries: dict[str, str] = {}

    @property
    def runtime(self) -> Any:
        """The open :class:`runtime.service.SpliceRuntime`."""
        return self.project.runtime

    @property
    def store(self) -> ObjectStore:
        return self.project.store

    @property
    def sf_app(self) -> Any:
        return self.project.emulators["salesforce"]

    @property
    def qb_app(self) -> Any:
        return self.project.emulators["quickbooks"]

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

    async def run(self, flow: str, payload: Any, attributes: Mapping[str, Any] | None = None) -> FlowRun:
        """One execution of ``flow`` for ``payload``."""
        return await self.project.arun(flow, payload, attributes=attributes)

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


def environ_for(*, reports: str, replaying: bool = False,
                environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables the project is loaded with: :data:`ENVIRON`, reports written to ``reports``
    (running the triggers runs nightly-reconciliation at once: its schedule catches up), and the
    realm id cassettes carry when they answer instead of the emulators."""
    realm = {"QUICKBOOKS_REALM_ID": RECORDED_REALM} if replaying else {}
    return {**ENVIRON, "RECONCILIATION_REPORT_DIR": reports, **realm, **(environ or {})}


@asynccontextmanager
async def open_integration(environ: Mapping[str, str] | None = None, *,
                           store: ObjectStore | None = None, emulators: bool = True,
                           salesforce_options: Mapping[str, Any] | None = None
                           ) -> AsyncIterator[Integration]:
    """The project opened against two fresh emulators, outside the fixtures: for a test that needs
    two differently configured projects in turn, or a store of its own. The ``integration`` fixture
    (``tests/flows/conftest.py``) is the same with the plugin's fixtures.

    ``emulators=False`` (cassette replay) leaves the connections without a transport: the
    recording answers, and the realm id is the one cassettes carry.
    """
    with tempfile.TemporaryDirectory(prefix="splice-reports-") as reports:
        options = {**EMULATOR_OPTIONS, "salesforce": dict(salesforce_options or {})}
        project = SpliceProject(PROJECT, env="dev", environ=environ_for(reports=reports, replaying=not emulators,
                                                                         environ=environ),
                                emulators=emulators, emulator_options=options, registry=load_registry(),
                                secrets=set(), store=store)
        try:
            async with project.opened():
                yield Integration(project)
        finally:
            project.close()

"""The multi-currency part of the demo company: euros beside dollars.

With multi-currency on (``create_app(demo=True, multicurrency=DEMO_RATES)``, as sandbox mode starts
it, or later with ``splice sandbox currencies``), the demo company has a EUR exchange rate and one customer who buys in
euros, linked from the Salesforce demo's EUR account (whose won deal the flows invoice in EUR).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.quickbooks.emulator.entities import Company

__all__ = ["DEMO_EUR_CUSTOMER", "DEMO_RATES", "seed_multicurrency_demo"]

#: Home (USD) units per one unit of each currency in the demo company.
DEMO_RATES: dict[str, Decimal | str] = {"EUR": Decimal("1.085"), "GBP": Decimal("1.27")}
#: (expected Id, DisplayName, e-mail, city, postal code, country) of the demo's euro customer.
DEMO_EUR_CUSTOMER = ("47", "Lumière Maison (EUR)", "compta@lumiere.example", "Lyon", "69002",
                     "France")


def seed_multicurrency_demo(company: Company, *, expect_id: bool = True) -> dict[str, Any]:
    """Add the euro customer to a demo company that has multi-currency on (once: an existing one
    is returned). ``expect_id``: it must get the id the Salesforce demo links (a fresh demo)."""
    expected, name, email, city, postal, country = DEMO_EUR_CUSTOMER
    for existing in company.tables["Customer"].values():
        if existing.get("DisplayName") == name:
            return existing
    customer = company.create("Customer", {
        "DisplayName": name, "CompanyName": "Lumière Maison", "PrimaryEmailAddr": {"Address": email},
        "BillAddr": {"City": city, "PostalCode": postal, "Country": country},
        "CurrencyRef": {"value": "EUR"}}, {})
    assert not expect_id or customer["Id"] == expected, f"demo ids must match the Salesforce demo: {customer['Id']}"
    return customer

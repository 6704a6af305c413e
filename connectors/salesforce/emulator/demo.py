"""Demo data for ``splice sandbox salesforce`` and ``create_app(demo=True)``: a small, believable
book of accounts, contacts, products with prices and opportunities in every stage."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.salesforce.emulator.store import Org

__all__ = ["seed_demo"]

_ACCOUNTS = [("Acme Corp", "San Francisco", "CA"), ("Globex", "Springfield", "OR"),
             ("Initech", "Austin", "TX"), ("Umbrella Retail", "Denver", "CO"),
             ("Stark Supplies", "New York", "NY"), ("Wayne Outfitters", "Chicago", "IL")]
_PEOPLE = [("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing"), ("Edsger", "Dijkstra"),
           ("Barbara", "Liskov"), ("Ken", "Thompson")]
_PRODUCTS = [("Widget", "WID-100", 62.5), ("Gadget", "GAD-200", 149.0),
             ("Installation", "SVC-INST", 95.0), ("Support Plan", "SVC-SUP", 1200.0)]
_STAGES = ["Prospecting", "Qualification", "Proposal/Price Quote", "Negotiation/Review",
           "Closed Won", "Closed Won", "Closed Lost"]


def seed_demo(org: Org, *, seed: int = 42) -> None:
    """Fill ``org`` with deterministic demo records (no change events are kept for them)."""
    rng = random.Random(seed)
    products = []
    for name, code, price in _PRODUCTS:
        product = org.create("Product2", {"Name": name, "ProductCode": code, "IsActive": True,
                                          "Family": "Hardware" if code[0] in "WG" else "Services"})
        entry = org.create("PricebookEntry", {"Pricebook2Id": org.standard_pricebook,
                                              "Product2Id": product["Id"], "UnitPrice": price})
        products.append((product, entry))
    for i, (name, city, state) in enumerate(_ACCOUNTS):
        account = org.create("Account", {"Name": name, "BillingCity": city, "BillingState": state,
                                         "BillingCountry": "USA", "Phone": f"(555) 010-{1000 + i}",
                                         "Industry": "Manufacturing"})
        first, last = _PEOPLE[i]
        org.create("Contact", {"AccountId": account["Id"], "FirstName": first, "LastName": last,
                               "Email": f"{first.lower()}.{last.lower()}@example.com"})
        for j in range(2):
            stage = rng.choice(_STAGES)
            opportunity = org.create("Opportunity", {
                "Name": f"{name} - order {j + 1}", "AccountId": account["Id"], "StageName": stage,
                "CloseDate": (date(2026, 1, 15) + timedelta(days=rng.randint(0, 150))).isoformat(),
                "Pricebook2Id": org.standard_pricebook})
            for _product, entry in rng.sample(products, k=rng.randint(1, 3)):
                org.create("OpportunityLineItem", {"OpportunityId": opportunity["Id"],
                                                   "PricebookEntryId": entry["Id"],
                                                   "Quantity": rng.randint(1, 20)})
    org.events.clear()

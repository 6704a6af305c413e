"""The multi-currency part of the demo org: a customer who buys in euros.

With multi-currency on (``create_app(demo=True, multicurrency=("USD", "EUR"))``, as sandbox mode
starts it) the demo org has a EUR account linked to the QuickBooks demo's euro customer, and a won EUR deal not yet invoiced: the
flows invoice it in euros, at QuickBooks' exchange rate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.salesforce.emulator.store import Org

__all__ = ["DEMO_EUR_ACCOUNT", "DEMO_EUR_DEAL", "seed_multicurrency_demo"]

#: The euro account, linked to the QuickBooks demo customer 47 (its customer in EUR).
DEMO_EUR_ACCOUNT: dict[str, Any] = {
    "Name": "Lumière Maison", "BillingStreet": "12 Rue de la République", "BillingCity": "Lyon",
    "BillingPostalCode": "69002", "BillingCountry": "France", "Phone": "+33 4 78 00 00 00",
    "Industry": "Retail", "Type": "Customer - Direct", "Billing_Email__c": "compta@lumiere.example",
    "Currency__c": "EUR", "CurrencyIsoCode": "EUR", "QB_Customer_Id__c": "47",
    "QB_Customer_Ids__c": "EUR:47", "QB_Sync_Status__c": "Synced"}
#: The won EUR deal: (name, close date, [(product code, quantity, unit price in EUR)]).
DEMO_EUR_DEAL = ("Lumière Maison - Boutique tablets", "2026-10-20",
                 [("Consulting Hours", 8, 140.0)])


def seed_multicurrency_demo(org: Org, *, linked: bool = True, events: bool = False) -> str:
    """Add the euro account and its won deal (after :func:`seed_demo`, in a multi-currency org), once
    (an existing deal is kept); returns the deal's id. ``linked``: the account links the QuickBooks demo's euro customer (a
    fresh pair of demos); else the flows find it by e-mail. ``events``: keep the change events
    (a running sandbox invokes its flows), as a salesperson's edits would make."""
    name, close, lines = DEMO_EUR_DEAL
    for existing in org.records["Opportunity"].values():
        if existing.get("Name") == name:  # the demo has it already (the sandbox's, from the start)
            return str(existing["Id"])
    body = dict(DEMO_EUR_ACCOUNT)
    if not linked:
        for field in ("QB_Customer_Id__c", "QB_Customer_Ids__c", "QB_Sync_Status__c"):
            body.pop(field)
    account = org.create("Account", body)
    opportunity = org.create("Opportunity", {
        "Name": name, "AccountId": account["Id"], "StageName": "Closed Won", "CloseDate": close,
        "Pricebook2Id": org.standard_pricebook, "Type": "New Customer", "CurrencyIsoCode": "EUR"})
    for product_name, quantity, price in lines:
        product = org.create("Product2", {"Name": product_name, "ProductCode": "CONS-EUR",
                                          "Family": "Services", "IsActive": True})
        entry = org.create("PricebookEntry", {"Pricebook2Id": org.standard_pricebook,
                                              "Product2Id": product["Id"], "UnitPrice": price})
        org.create("OpportunityLineItem", {"OpportunityId": opportunity["Id"],
                                           "PricebookEntryId": entry["Id"], "Quantity": quantity,
                                           "UnitPrice": price})
    if not events:
        org.events.clear()
    return str(opportunity["Id"])

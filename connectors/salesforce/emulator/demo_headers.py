"""The demo org's invoice headers: a won opportunity that names a class, a location, a PO number,
a region and a message to the customer, for an account with a shipping address.

With the shipped project's ``invoice.*`` header properties on (README, "Invoice headers";
``INVOICE_CLASS_FIELD=QB_Class__c`` ...), ``splice serve --sandbox`` invoices it at start with
every header, e-mails it through QuickBooks once and writes its customer-facing link back. The
QuickBooks demo company (``connectors/quickbooks/emulator/demo_headers.py``) has the class, the
location and the custom fields it names.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.salesforce.emulator.store import Org

__all__ = ["DEMO_HEADER_OPPORTUNITY", "seed_demo_headers"]

#: The opportunity: its account, name, days before seeding it closed, lines and header fields.
DEMO_HEADER_OPPORTUNITY: dict[str, Any] = {
    "account": "Acme Corp",
    "name": "Acme Corp - Headquarters widgets",
    "closed_days_ago": 3,
    "lines": (("WID-100", 24), ("SVC-INST", 2)),
    "fields": {"QB_Class__c": "West", "QB_Location__c": "San Francisco", "PO_Number__c": "PO-2231",
               "Region__c": "Bay Area",
               "Invoice_Memo__c": "Thank you for your order: delivery to the loading dock."},
    "shipping": {"ShippingStreet": "500 Terry A Francois Blvd\nLoading dock B",
                 "ShippingCity": "San Francisco", "ShippingState": "CA",
                 "ShippingPostalCode": "94158", "ShippingCountry": "USA"},
}


def seed_demo_headers(org: Org) -> None:
    """Add the header opportunity (after every other demo record, so their ids stay as they are)."""
    demo = DEMO_HEADER_OPPORTUNITY
    account = next(a for a in org.records["Account"].values() if a["Name"] == demo["account"])
    org.update("Account", account["Id"], demo["shipping"])
    codes = {p["Id"]: p["ProductCode"] for p in org.records["Product2"].values()}
    entries = {codes[e["Product2Id"]]: e["Id"] for e in org.records["PricebookEntry"].values()
               if e["Product2Id"] in codes}
    closed = (datetime.now(UTC).date() - timedelta(days=demo["closed_days_ago"])).isoformat()
    opportunity = org.create("Opportunity", {
        "Name": demo["name"], "AccountId": account["Id"], "StageName": "Closed Won",
        "CloseDate": closed, "Pricebook2Id": org.standard_pricebook, "Type": "Existing Customer - Upgrade",
        **demo["fields"]})
    for code, quantity in demo["lines"]:
        org.create("OpportunityLineItem", {"OpportunityId": opportunity["Id"],
                                           "PricebookEntryId": entries[code], "Quantity": quantity})

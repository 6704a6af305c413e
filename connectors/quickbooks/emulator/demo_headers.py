"""The demo company's invoice headers: what the Salesforce demo's header opportunity names.

The company tracks one class per transaction and locations (departments), has three sales-form
custom fields ("Opportunity", which the demo invoices already fill, "P.O. Number" and "Region")
and takes online payments, so with the ``invoice.*`` header properties on (README, "Invoice
headers") the sync's start-up check passes against it and its invoices carry every header, are
e-mailed and get a customer-facing link. The Salesforce demo's opportunity "Acme Corp - Headquarters
widgets" names the class "West" and the location "San Francisco" (``tests/sandbox/test_demo_headers.py``
checks that both demos agree).
"""

from __future__ import annotations

from connectors.quickbooks.emulator.entities import Company
from connectors.quickbooks.emulator.headers import set_header_preferences

__all__ = ["DEMO_CLASSES", "DEMO_CUSTOM_FIELDS", "DEMO_DEPARTMENTS", "seed_demo_headers"]

#: Classes (business segments) and departments (locations) of the demo company.
DEMO_CLASSES = ("West", "East")
DEMO_DEPARTMENTS = ("San Francisco", "Boston")
#: The sales-form custom fields, in DefinitionId order.
DEMO_CUSTOM_FIELDS = ("Opportunity", "P.O. Number", "Region")


def seed_demo_headers(company: Company) -> None:
    """Turn the header features on and add the classes and locations (after every other demo
    record, so the ids the Salesforce demo refers to stay as they are)."""
    set_header_preferences(company, class_tracking="txn", departments=True,
                           custom_fields=DEMO_CUSTOM_FIELDS, online_payments=True)
    for name in DEMO_CLASSES:
        company.create("Class", {"Name": name}, {})
    for name in DEMO_DEPARTMENTS:
        company.create("Department", {"Name": name}, {})

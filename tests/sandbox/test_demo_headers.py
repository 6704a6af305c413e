"""The demo shows invoice headers: the header opportunity names what the demo company has (its
invoicing with the header properties on: tests/flows/test_invoice_headers.py)."""

from __future__ import annotations

from connectors.quickbooks.emulator import create_app as create_quickbooks
from connectors.quickbooks.emulator.app import DEFAULT_REALM
from connectors.quickbooks.emulator.demo_headers import DEMO_CLASSES, DEMO_CUSTOM_FIELDS, DEMO_DEPARTMENTS
from connectors.quickbooks.emulator.headers import custom_field_definitions
from connectors.salesforce.emulator import create_app as create_salesforce
from connectors.salesforce.emulator.demo_headers import DEMO_HEADER_OPPORTUNITY


def test_the_header_opportunity_names_what_the_demo_company_has() -> None:
    org = create_salesforce(demo=True).state.emulator.org
    company = create_quickbooks(demo=True).state.emulator.companies[DEFAULT_REALM]
    [opportunity] = [o for o in org.records["Opportunity"].values()
                     if o["Name"] == DEMO_HEADER_OPPORTUNITY["name"]]
    assert opportunity["IsWon"] and not opportunity["QuickBooks_Invoice_Id__c"]
    assert opportunity["QB_Class__c"] in DEMO_CLASSES
    assert opportunity["QB_Location__c"] in DEMO_DEPARTMENTS
    assert {c["Name"] for c in company.tables["Class"].values()} == set(DEMO_CLASSES)
    assert {d["Name"] for d in company.tables["Department"].values()} == set(DEMO_DEPARTMENTS)
    assert list(custom_field_definitions(company).values()) == list(DEMO_CUSTOM_FIELDS)
    account = org.records["Account"][opportunity["AccountId"]]
    assert account["ShippingCity"] == "San Francisco" and account["QB_Customer_Id__c"]

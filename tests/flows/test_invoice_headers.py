"""Complete invoice headers: class, location, PO number, custom fields, memo, ship-to, the
customer's own terms, e-mail through QuickBooks once, and the customer-facing link written back;
a name QuickBooks does not have stops the start (check-invoice-headers)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.quickbooks.emulator.headers import set_header_preferences
from connectors.salesforce.emulator.demo_headers import DEMO_HEADER_OPPORTUNITY
from runtime.preview import previewing
from runtime.startup import StartupCheckError, run_startup_checks
from tests.support.flows import Integration

pytestmark = pytest.mark.anyio

#: Every header property on, as an operator of the shipped project sets them.
HEADERS = {
    "INVOICE_CLASS_FIELD": "QB_Class__c",
    "INVOICE_DEPARTMENT_FIELD": "QB_Location__c",
    "INVOICE_PO_NUMBER_FIELD": "PO_Number__c",
    "INVOICE_CUSTOM_FIELDS": "Region=Region__c",
    "INVOICE_CUSTOMER_MEMO_FIELD": "Invoice_Memo__c",
    "INVOICE_SHIP_TO": "account-shipping",
    "INVOICE_SEND": "on-create",
    "INVOICE_ONLINE_PAYMENT": "card-and-bank",
}


def prepare_company(it: Integration) -> dict[str, str]:
    """A company that tracks classes and locations, with two custom fields and online payments."""
    set_header_preferences(it.company, class_tracking="txn", departments=True,
                           custom_fields=("P.O. Number", "Region"), online_payments=True)
    west = it.company.create("Class", {"Name": "West"}, {})
    boston = it.company.create("Department", {"Name": "Boston"}, {})
    return {"class": west["Id"], "department": boston["Id"]}


def seed(it: Integration, **opportunity: Any) -> tuple[str, str]:
    account = it.account("Harbor Freight Co", Billing_Email__c="ap@harbor.example",
                         BillingCity="Boston", ShippingStreet="9 Dock Rd\nGate 4",
                         ShippingCity="Quincy", ShippingState="MA", ShippingPostalCode="02169",
                         ShippingCountry="USA")
    hours = it.product("Harbor Hours", 120, StockKeepingUnit="HRB-1", Family="Services")
    opp = it.opportunity(account, [{"product": hours, "Quantity": 3}])
    fields = {"QB_Class__c": "West", "QB_Location__c": "Boston", "PO_Number__c": "PO-7781",
              "Region__c": "New England", "Invoice_Memo__c": "Thank you for your business.",
              **opportunity}
    it.org.update("Opportunity", opp, fields)
    return account, opp


async def invoice(it: Integration, opp: str) -> dict[str, Any]:
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    [made] = [i for i in it.table("Invoice") if i["DocNumber"] == "SF-" + opp[:15]]
    return dict(made)


@pytest.mark.splice(environ=HEADERS)
async def test_each_header_lands_on_the_invoice_which_is_sent_once(integration: Integration) -> None:
    it = integration
    ids = prepare_company(it)
    await run_startup_checks(it.runtime)  # every configured name exists
    _account, opp = seed(it)
    made = await invoice(it, opp)
    assert made["ClassRef"]["value"] == ids["class"]
    assert made["DepartmentRef"]["value"] == ids["department"]
    assert {(f["Name"], f["StringValue"]) for f in made["CustomField"]} == {
        ("P.O. Number", "PO-7781"), ("Region", "New England")}
    assert made["CustomerMemo"] == {"value": "Thank you for your business."}
    assert made["ShipAddr"] == {"Line1": "9 Dock Rd", "Line2": "Gate 4", "City": "Quincy",
                                "CountrySubDivisionCode": "MA", "PostalCode": "02169",
                                "Country": "USA"}
    assert made["BillEmail"] == {"Address": "ap@harbor.example"}
    assert made["EmailStatus"] == "EmailSent" and made["DeliveryInfo"]["DeliveryType"] == "Email"
    assert made["AllowOnlineCreditCardPayment"] is True and made["AllowOnlineACHPayment"] is True
    link = it.record("Opportunity", opp)["QuickBooks_Invoice_Link__c"]
    assert link.startswith("https://developer.intuit.com/comingSoonview/scs-v1-")
    sent_at = made["DeliveryInfo"]["DeliveryTime"]
    # The same event again (a re-delivery), and an edit of the opportunity: never mailed twice.
    await invoice(it, opp)
    it.org.update("Opportunity", opp, {"Invoice_Memo__c": "Net 30, thank you.", "QB_Class__c": ""})
    again = await invoice(it, opp)
    assert again["DeliveryInfo"]["DeliveryTime"] == sent_at
    assert again["CustomerMemo"] == {"value": "Net 30, thank you."}  # the unpaid invoice follows
    assert it.record("Opportunity", opp)["QuickBooks_Invoice_Link__c"] == link


@pytest.mark.splice(environ={"INVOICE_SEND": "on-create"})
async def test_an_invoice_marked_to_send_again_is_not_mailed_twice(integration: Integration) -> None:
    """The ledger remembers the send: the opportunity's next event does not mail the invoice twice."""
    it = integration
    _account, opp = seed(it)
    made = await invoice(it, opp)
    assert made["EmailStatus"] == "EmailSent"
    # Someone marks it "to send" in QuickBooks; the integration has sent it once and never again.
    stored = it.company.get("Invoice", made["Id"])
    stored["EmailStatus"] = "NeedToSend"
    it.company.touch("Invoice", stored)
    it.org.update("Opportunity", opp, {"Name": "Deal (renamed)"})
    after = await invoice(it, opp)
    assert after["EmailStatus"] == "NeedToSend"
    assert after["DeliveryInfo"] == made["DeliveryInfo"]


async def test_without_header_properties_the_invoice_is_as_before(integration: Integration) -> None:
    """Empty properties: no class, location, custom fields, memo, mailing; the app link."""
    it = integration
    prepare_company(it)
    _account, opp = seed(it)
    made = await invoice(it, opp)
    for absent in ("ClassRef", "DepartmentRef", "CustomerMemo", "DeliveryInfo"):
        assert absent not in made
    assert made.get("CustomField", []) == [] and made["EmailStatus"] == "NotSet"
    assert it.record("Opportunity", opp)["QuickBooks_Invoice_Link__c"].endswith("txnId=" + made["Id"])


async def test_the_customers_own_terms_win_over_the_default(integration: Integration) -> None:
    it = integration
    account, opp = seed(it)
    receipt = next(t for t in it.table("Term") if t["Name"] == "Due on receipt")
    customer = it.company.create("Customer", {"DisplayName": "Harbor Freight Co",
                                              "SalesTermRef": {"value": receipt["Id"]}}, {})
    it.org.update("Account", account, {"QB_Customer_Id__c": customer["Id"]})
    made = await invoice(it, opp)
    assert made["SalesTermRef"]["value"] == receipt["Id"]
    assert made["DueDate"] == made["TxnDate"] == "2026-03-31"


@pytest.mark.splice(environ=HEADERS)
async def test_an_opportunity_naming_an_unknown_class_is_not_invoiced(integration: Integration) -> None:
    it = integration
    prepare_company(it)
    _account, opp = seed(it, QB_Class__c="Wset")
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status != "completed"
    assert outcome.error is not None
    assert 'Class "Wset" (Opportunity.QB_Class__c) does not exist in QuickBooks' in outcome.error.message
    assert not [i for i in it.table("Invoice") if i["DocNumber"] == "SF-" + opp[:15]]


@pytest.mark.splice(environ={**HEADERS, "INVOICE_DEFAULT_CLASS": "Wset"})
async def test_an_unknown_class_name_is_a_startup_error(integration: Integration) -> None:
    it = integration
    prepare_company(it)
    with pytest.raises(StartupCheckError) as failed:
        await run_startup_checks(it.runtime)
    message = str(failed.value)
    assert "check-invoice-headers" in message
    assert 'invoice.default-class is "Wset", but QuickBooks has no active Class of that name' in message


@pytest.mark.splice(environ={**HEADERS, "INVOICE_CUSTOM_FIELDS": "Regoin=Region__c"})
async def test_an_unknown_custom_field_or_untracked_classes_are_startup_errors(
        integration: Integration) -> None:
    it = integration
    set_header_preferences(it.company, custom_fields=("P.O. Number", "Region"))
    with pytest.raises(StartupCheckError) as failed:
        await run_startup_checks(it.runtime)
    message = str(failed.value)
    assert 'custom field "Regoin"' in message and "only P.O. Number, Region" in message
    assert "QuickBooks does not track a class per invoice" in message
    assert "does not track locations" in message


@pytest.mark.splice(environ=HEADERS, emulator_options={"salesforce": {"demo": True},
                                                       "quickbooks": {"demo": True}})
async def test_the_demo_invoices_the_header_opportunity_with_every_header(
        integration: Integration) -> None:
    """The sandbox's demo data on both sides, as ``splice serve --sandbox`` starts them."""
    it = integration
    await run_startup_checks(it.runtime)
    [opportunity] = [o for o in it.org.records["Opportunity"].values()
                     if o["Name"] == DEMO_HEADER_OPPORTUNITY["name"]]
    outcome = await it.run("opportunity-to-invoice", dict(opportunity))
    assert outcome.status == "completed", outcome.error
    [made] = [i for i in it.table("Invoice") if i["DocNumber"] == "SF-" + opportunity["Id"][:15]]
    assert made["ClassRef"]["name"] == "West"
    assert made["DepartmentRef"]["name"] == "San Francisco"
    assert {f["Name"]: f["StringValue"] for f in made["CustomField"]} == {
        "P.O. Number": "PO-2231", "Region": "Bay Area"}
    assert made["ShipAddr"]["Line2"] == "Loading dock B"
    assert made["EmailStatus"] == "EmailSent" and made["BillEmail"]["Address"] == "ap@acme.example"
    link = it.record("Opportunity", opportunity["Id"])["QuickBooks_Invoice_Link__c"]
    assert link.startswith("https://developer.intuit.com/comingSoonview/")


@pytest.mark.splice(environ=HEADERS)
async def test_a_dry_run_shows_the_headers_and_the_send_and_mails_nobody(
        integration: Integration) -> None:
    it = integration
    prepare_company(it)
    _account, opp = seed(it)
    with previewing() as plan:
        outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    writes = {(w.operation, w.action): w for w in plan.writes}
    create = writes[("quickbooks.create", "create")].payload
    assert create["ClassRef"] and create["EmailStatus"] == "NeedToSend"
    assert ("quickbooks.send", "send") in writes
    assert not it.table("Invoice")

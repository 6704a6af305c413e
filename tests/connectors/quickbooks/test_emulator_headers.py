"""The emulator keeps invoice headers as QuickBooks does: classes, departments, custom fields,
the customer's defaults, sending by e-mail and the customer-facing link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.quickbooks.emulator.headers import set_header_preferences
from tests.support.quickbooks import CLIENT_ID, CLIENT_SECRET, REALM, SEED_REFRESH_TOKEN

pytestmark = pytest.mark.anyio
API = f"/v3/company/{REALM}"


@pytest.fixture
async def http(emulator: Any, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """A raw client with a valid access token."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator),
                                 base_url="http://qb.test") as client:
        token = await client.post("/oauth2/v1/tokens/bearer", auth=(CLIENT_ID, CLIENT_SECRET),
                                  data={"grant_type": "refresh_token",
                                        "refresh_token": SEED_REFRESH_TOKEN})
        client.headers.update({"Authorization": f"Bearer {token.json()['access_token']}",
                               "Accept": "application/json"})
        yield client


def _company(emulator: Any) -> Any:
    return emulator.state.emulator.companies[REALM]


def _fault(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["Fault"]["Error"][0]
    return response.status_code, str(error["code"]), str(error.get("element", ""))


async def _create(http: httpx.AsyncClient, entity: str, body: dict[str, Any]) -> httpx.Response:
    return await http.post(f"{API}/{entity.lower()}", params={"minorversion": "75"}, json=body)


async def _customer(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await _create(http, "Customer", {"DisplayName": "Header Test Co", **fields})
    assert response.status_code == 200, response.text
    return dict(response.json()["Customer"])


def _line(**detail: Any) -> dict[str, Any]:
    return {"DetailType": "SalesItemLineDetail", "Amount": 150,
            "SalesItemLineDetail": {"ItemRef": {"value": "10"}, "Qty": 2, "UnitPrice": 75, **detail}}


async def test_classes_and_departments_are_name_lists(http: httpx.AsyncClient) -> None:
    """Created, nested as Parent:Child, queried by name; a second one of a name is 6240."""
    west = (await _create(http, "Class", {"Name": "West"})).json()["Class"]
    retail = (await _create(http, "Class", {"Name": "Retail", "SubClass": True,
                                            "ParentRef": {"value": west["Id"]}})).json()["Class"]
    assert retail["FullyQualifiedName"] == "West:Retail" and retail["SubClass"] is True
    assert west["Active"] is True and west["SubClass"] is False
    again = await _create(http, "Class", {"Name": "West"})
    assert _fault(again)[:2] == (400, "6240")
    colon = await _create(http, "Department", {"Name": "North:East"})
    assert _fault(colon)[:2] == (400, "2050")
    boston = (await _create(http, "Department", {"Name": "Boston"})).json()["Department"]
    found = await http.get(f"{API}/query", params={"query": "select * from Department where Name = 'boston'"})
    assert [d["Id"] for d in found.json()["QueryResponse"]["Department"]] == [boston["Id"]]


async def test_class_and_department_refs_follow_the_preferences(emulator: Any,
                                                                http: httpx.AsyncClient) -> None:
    """Unknown refs are 2500; a class or department the company does not track is dropped."""
    customer = await _customer(http)
    west = (await _create(http, "Class", {"Name": "West"})).json()["Class"]
    boston = (await _create(http, "Department", {"Name": "Boston"})).json()["Department"]
    unknown = await _create(http, "Invoice", {"CustomerRef": {"value": customer["Id"]},
                                              "ClassRef": {"value": "9999"}, "Line": [_line()]})
    assert _fault(unknown) == (400, "2500", "ClassRef")
    unknown = await _create(http, "Invoice", {"CustomerRef": {"value": customer["Id"]},
                                              "DepartmentRef": {"value": "9999"}, "Line": [_line()]})
    assert _fault(unknown) == (400, "2500", "DepartmentRef")
    body = {"CustomerRef": {"value": customer["Id"]}, "ClassRef": {"value": west["Id"]},
            "DepartmentRef": {"value": boston["Id"]}, "Line": [_line()]}
    untracked = (await _create(http, "Invoice", body)).json()["Invoice"]
    assert "ClassRef" not in untracked and "DepartmentRef" not in untracked
    set_header_preferences(_company(emulator), class_tracking="txn", departments=True)
    tracked = (await _create(http, "Invoice", body)).json()["Invoice"]
    assert tracked["ClassRef"] == {"value": west["Id"], "name": "West"}
    assert tracked["DepartmentRef"] == {"value": boston["Id"], "name": "Boston"}
    set_header_preferences(_company(emulator), class_tracking="line")
    per_line = (await _create(http, "Invoice", {"CustomerRef": {"value": customer["Id"]},
                                                "Line": [_line(ClassRef={"value": west["Id"]})]}
                              )).json()["Invoice"]
    assert per_line["Line"][0]["SalesItemLineDetail"]["ClassRef"]["value"] == west["Id"]


async def test_custom_fields_are_the_companys_definitions(emulator: Any,
                                                          http: httpx.AsyncClient) -> None:
    """Entries of enabled definitions are kept and named; others dropped; > 31 characters is 2050."""
    set_header_preferences(_company(emulator), custom_fields=("Opportunity", "P.O. Number"))
    prefs = (await http.get(f"{API}/preferences")).json()["Preferences"]
    groups = prefs["SalesFormsPrefs"]["CustomField"]
    assert {"Name": "SalesFormsPrefs.SalesCustomName2", "Type": "StringType",
            "StringValue": "P.O. Number"} in groups[1]["CustomField"]
    customer = await _customer(http)
    made = await _create(http, "Invoice", {
        "CustomerRef": {"value": customer["Id"]}, "Line": [_line()],
        "CustomField": [{"DefinitionId": "2", "Type": "StringType", "StringValue": "PO-7781"},
                        {"DefinitionId": "3", "Type": "StringType", "StringValue": "ignored"}]})
    assert made.json()["Invoice"]["CustomField"] == [
        {"DefinitionId": "2", "Name": "P.O. Number", "Type": "StringType", "StringValue": "PO-7781"}]
    long = await _create(http, "Invoice", {
        "CustomerRef": {"value": customer["Id"]}, "Line": [_line()],
        "CustomField": [{"DefinitionId": "1", "Type": "StringType", "StringValue": "x" * 32}]})
    assert _fault(long) == (400, "2050", "CustomField.StringValue")


async def test_a_new_invoice_takes_the_customers_terms_and_addresses(http: httpx.AsyncClient) -> None:
    """SalesTermRef (and so DueDate), BillAddr and ShipAddr come from the customer when not given."""
    terms = (await http.get(f"{API}/query", params={"query": "select * from Term where Name = 'Due on receipt'"}
                            )).json()["QueryResponse"]["Term"][0]
    customer = await _customer(http, SalesTermRef={"value": terms["Id"]},
                               BillAddr={"Line1": "1 Main St", "City": "Boston"},
                               ShipAddr={"Line1": "9 Dock Rd", "City": "Quincy"})
    invoice = (await _create(http, "Invoice", {"CustomerRef": {"value": customer["Id"]},
                                               "TxnDate": "2026-03-02", "Line": [_line()],
                                               "CustomerMemo": {"value": "Thank you!"}})
               ).json()["Invoice"]
    assert invoice["SalesTermRef"]["value"] == terms["Id"] and invoice["DueDate"] == "2026-03-02"
    assert invoice["ShipAddr"]["City"] == "Quincy" and invoice["BillAddr"]["City"] == "Boston"
    assert invoice["CustomerMemo"] == {"value": "Thank you!"}
    status = await _create(http, "Invoice", {"CustomerRef": {"value": customer["Id"]},
                                             "Line": [_line()], "EmailStatus": "Mailed"})
    assert _fault(status) == (400, "2170", "EmailStatus")


async def test_send_mails_the_invoice_once_it_has_an_address(http: httpx.AsyncClient) -> None:
    """No address is 6000; sendTo becomes BillEmail; EmailStatus EmailSent with DeliveryInfo."""
    customer = await _customer(http)
    invoice = (await _create(http, "Invoice", {"CustomerRef": {"value": customer["Id"]},
                                               "Line": [_line()]})).json()["Invoice"]
    headers = {"Content-Type": "application/octet-stream"}
    nowhere = await http.post(f"{API}/invoice/{invoice['Id']}/send", headers=headers)
    assert _fault(nowhere) == (400, "6000", "BillEmail")
    bad = await http.post(f"{API}/invoice/{invoice['Id']}/send", params={"sendTo": "not-an-address"},
                          headers=headers)
    assert _fault(bad)[:2] == (400, "2050")
    sent = await http.post(f"{API}/invoice/{invoice['Id']}/send", params={"sendTo": "ap@acme.example"},
                           headers=headers)
    body = sent.json()["Invoice"]
    assert body["EmailStatus"] == "EmailSent" and body["BillEmail"] == {"Address": "ap@acme.example"}
    assert body["DeliveryInfo"]["DeliveryType"] == "Email" and body["SyncToken"] == "1"
    missing = await http.post(f"{API}/invoice/9999/send", headers=headers)
    assert _fault(missing)[:2] == (400, "610")


async def test_the_invoice_link_needs_online_payment_and_an_address(emulator: Any,
                                                                    http: httpx.AsyncClient) -> None:
    """InvoiceLink only with include=invoiceLink, for an invoice payable online; the same each time."""
    customer = await _customer(http)
    body = {"CustomerRef": {"value": customer["Id"]}, "Line": [_line()],
            "BillEmail": {"Address": "ap@acme.example"}, "AllowOnlineCreditCardPayment": True}
    offline = await http.post(f"{API}/invoice", params={"include": "invoiceLink"}, json=body)
    assert "InvoiceLink" not in offline.json()["Invoice"]
    set_header_preferences(_company(emulator), online_payments=True)
    made = (await http.post(f"{API}/invoice", params={"include": "invoiceLink"}, json=body)
            ).json()["Invoice"]
    link = made["InvoiceLink"]
    assert link.startswith("https://developer.intuit.com/comingSoonview/scs-v1-")
    plain = (await http.get(f"{API}/invoice/{made['Id']}")).json()["Invoice"]
    assert "InvoiceLink" not in plain
    read = (await http.get(f"{API}/invoice/{made['Id']}", params={"include": "invoiceLink"})
            ).json()["Invoice"]
    assert read["InvoiceLink"] == link
    query = await http.get(f"{API}/query", params={
        "query": f"select * from Invoice where Id = '{made['Id']}'", "include": "invoiceLink"})
    assert query.json()["QueryResponse"]["Invoice"][0]["InvoiceLink"] == link
    no_card = (await http.post(f"{API}/invoice", params={"include": "invoiceLink"}, json={
        **body, "AllowOnlineCreditCardPayment": False})).json()["Invoice"]
    assert "InvoiceLink" not in no_card

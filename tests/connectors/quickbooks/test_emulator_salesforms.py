"""SalesReceipt and Estimate in the emulator: shapes, faults, and an estimate closed by its invoice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.connectors.quickbooks.test_emulator import API, _code, _refresh
from tests.support.quickbooks import SEED_REFRESH_TOKEN

pytestmark = pytest.mark.anyio
HOURS = {"DetailType": "SalesItemLineDetail", "Amount": 150,
         "SalesItemLineDetail": {"ItemRef": {"value": "9"}, "Qty": 2, "UnitPrice": 75}}


@pytest.fixture
async def http(emulator: Any, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """A raw client with a valid access token."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator),
                                 base_url="http://qb.test") as client:
        token = await _refresh(client, SEED_REFRESH_TOKEN)
        client.headers.update({"Authorization": f"Bearer {token.json()['access_token']}",
                               "Accept": "application/json"})
        yield client


async def _post(http: httpx.AsyncClient, entity: str, body: dict[str, Any],
                params: dict[str, str] | None = None) -> dict[str, Any]:
    response = await http.post(f"{API}/{entity.lower()}", json=body, params=params or {})
    assert response.status_code == 200, response.text
    return dict(response.json()[entity])


async def _query(http: httpx.AsyncClient, text: str) -> dict[str, Any]:
    response = await http.get(f"{API}/query", params={"query": text})
    assert response.status_code == 200, response.text
    return dict(response.json()["QueryResponse"])


async def test_sales_receipt_is_paid_at_the_sale(http: httpx.AsyncClient) -> None:
    """Balance 0, TotalAmt from the lines, Undeposited Funds unless told, the method resolved."""
    methods = await _query(http, "select * from PaymentMethod where Name = 'Check'")
    check = methods["PaymentMethod"][0]
    receipt = await _post(http, "SalesReceipt", {
        "CustomerRef": {"value": "11"}, "DocNumber": "SR-1", "Line": [HOURS],
        "PaymentMethodRef": {"value": check["Id"]}})
    assert receipt["TotalAmt"] == 150 and receipt["Balance"] == 0
    assert receipt["DepositToAccountRef"]["name"] == "Undeposited Funds"
    assert receipt["PaymentMethodRef"] == {"value": check["Id"], "name": "Check"}
    assert receipt["Line"][-1]["DetailType"] == "SubTotalLineDetail"
    found = await _query(http, "select * from SalesReceipt where DocNumber = 'SR-1'")
    assert [r["Id"] for r in found["SalesReceipt"]] == [receipt["Id"]]
    read = await http.get(f"{API}/salesreceipt/{receipt['Id']}")
    assert read.json()["SalesReceipt"]["TotalAmt"] == 150


async def test_sales_receipt_faults(http: httpx.AsyncClient) -> None:
    """A duplicate DocNumber is 6140, an unknown payment method 2500, no lines 2020."""
    await _post(http, "SalesReceipt", {"DocNumber": "SR-2", "Line": [HOURS]})
    again = await http.post(f"{API}/salesreceipt", json={"DocNumber": "SR-2", "Line": [HOURS]})
    assert again.status_code == 400 and _code(again) == "6140"
    method = await http.post(f"{API}/salesreceipt", json={
        "Line": [HOURS], "PaymentMethodRef": {"value": "999"}})
    assert _code(method) == "2500"
    empty = await http.post(f"{API}/salesreceipt", json={"CustomerRef": {"value": "11"}})
    assert _code(empty) == "2020"


async def test_sales_receipt_void_through_update(http: httpx.AsyncClient) -> None:
    """``operation=update&include=void`` keeps the receipt with zero amounts."""
    receipt = await _post(http, "SalesReceipt", {"CustomerRef": {"value": "11"}, "Line": [HOURS]})
    voided = await _post(http, "SalesReceipt", {"Id": receipt["Id"], "SyncToken": receipt["SyncToken"],
                                                "sparse": True},
                         {"operation": "update", "include": "void"})
    assert voided["TotalAmt"] == 0 and voided["PrivateNote"].startswith("Voided")


async def test_estimate_status_and_expiration(http: httpx.AsyncClient) -> None:
    """Pending by default; a status QuickBooks does not know is 2170; the customer is required."""
    estimate = await _post(http, "Estimate", {
        "CustomerRef": {"value": "11"}, "Line": [HOURS], "ExpirationDate": "2026-12-31"})
    assert estimate["TxnStatus"] == "Pending" and estimate["TotalAmt"] == 150
    assert estimate["ExpirationDate"] == "2026-12-31" and estimate["LinkedTxn"] == []
    bad = await http.post(f"{API}/estimate", json={"CustomerRef": {"value": "11"},
                                                   "Line": [HOURS], "TxnStatus": "Won"})
    assert _code(bad) == "2170"
    nobody = await http.post(f"{API}/estimate", json={"Line": [HOURS]})
    assert _code(nobody) == "2020"
    pending = await _query(http, "select * from Estimate where TxnStatus = 'Pending'")
    assert estimate["Id"] in [e["Id"] for e in pending["Estimate"]]


async def test_invoice_from_estimate_closes_it(http: httpx.AsyncClient) -> None:
    """The invoice keeps its LinkedTxn to the estimate; the estimate is Closed and shows the
    invoice, with a new SyncToken; a payment adds to the invoice's links without losing it."""
    estimate = await _post(http, "Estimate", {"CustomerRef": {"value": "11"}, "Line": [HOURS]})
    invoice = await _post(http, "Invoice", {
        "CustomerRef": {"value": "11"}, "Line": [HOURS],
        "LinkedTxn": [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]})
    assert invoice["LinkedTxn"] == [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]
    closed = (await http.get(f"{API}/estimate/{estimate['Id']}")).json()["Estimate"]
    assert closed["TxnStatus"] == "Closed"
    assert closed["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    assert closed["SyncToken"] != estimate["SyncToken"]
    payment = await _post(http, "Payment", {
        "CustomerRef": {"value": "11"}, "TotalAmt": 50,
        "Line": [{"Amount": 50, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    paid = (await http.get(f"{API}/invoice/{invoice['Id']}")).json()["Invoice"]
    assert paid["LinkedTxn"] == [{"TxnId": estimate["Id"], "TxnType": "Estimate"},
                                 {"TxnId": payment["Id"], "TxnType": "Payment"}]
    assert paid["Balance"] == 100


async def test_voided_invoice_reopens_its_estimate(http: httpx.AsyncClient) -> None:
    """Voiding the invoice takes the estimate's link away; it is Accepted again."""
    estimate = await _post(http, "Estimate", {"CustomerRef": {"value": "11"}, "Line": [HOURS]})
    invoice = await _post(http, "Invoice", {
        "CustomerRef": {"value": "11"}, "Line": [HOURS],
        "LinkedTxn": [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]})
    await _post(http, "Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]},
                {"operation": "void"})
    reopened = (await http.get(f"{API}/estimate/{estimate['Id']}")).json()["Estimate"]
    assert reopened["TxnStatus"] == "Accepted" and reopened["LinkedTxn"] == []


async def test_link_to_another_customers_estimate_is_refused(http: httpx.AsyncClient) -> None:
    """An estimate of another customer (or none) is 2500, and nothing is created."""
    estimate = await _post(http, "Estimate", {"CustomerRef": {"value": "12"}, "Line": [HOURS]})
    response = await http.post(f"{API}/invoice", json={
        "CustomerRef": {"value": "11"}, "Line": [HOURS],
        "LinkedTxn": [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]})
    assert response.status_code == 400 and _code(response) == "2500"
    still = (await http.get(f"{API}/estimate/{estimate['Id']}")).json()["Estimate"]
    assert still["TxnStatus"] == "Pending"


async def test_cdc_reports_sales_receipts_and_estimates(http: httpx.AsyncClient) -> None:
    """Both forms are in change data capture."""
    receipt = await _post(http, "SalesReceipt", {"Line": [HOURS]})
    since = receipt["MetaData"]["CreateTime"]
    estimate = await _post(http, "Estimate", {"CustomerRef": {"value": "11"}, "Line": [HOURS]})
    response = await http.get(f"{API}/cdc", params={"entities": "SalesReceipt,Estimate",
                                                   "changedSince": since})
    assert response.status_code == 200, response.text
    groups = response.json()["CDCResponse"][0]["QueryResponse"]
    ids = {name: [r["Id"] for r in group[name]] for group in groups for name in group
           if name in ("SalesReceipt", "Estimate")}
    assert ids == {"SalesReceipt": [receipt["Id"]], "Estimate": [estimate["Id"]]}


async def test_webhooks_announce_receipts_estimates_and_the_closing(anyio_backend: str) -> None:
    """Create events for both forms, and an Update of the estimate an invoice closes."""
    from connectors.quickbooks.emulator import create_app

    app = create_app(refresh_token=SEED_REFRESH_TOKEN, webhook_url="http://hooks.test/quickbooks")
    emulator = app.state.emulator
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://qb.test") as client:
        token = await _refresh(client, SEED_REFRESH_TOKEN)
        client.headers.update({"Authorization": f"Bearer {token.json()['access_token']}",
                               "Accept": "application/json"})
        emulator.webhooks.pending.clear()
        receipt = await _post(client, "SalesReceipt", {"Line": [HOURS]})
        estimate = await _post(client, "Estimate", {"CustomerRef": {"value": "11"}, "Line": [HOURS]})
        invoice = await _post(client, "Invoice", {
            "CustomerRef": {"value": "11"}, "Line": [HOURS],
            "LinkedTxn": [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]})
    events = [(entity, eid, op) for _realm, entity, eid, op, _when in emulator.webhooks.pending]
    assert ("SalesReceipt", receipt["Id"], "Create") in events
    assert ("Estimate", estimate["Id"], "Create") in events
    assert ("Estimate", estimate["Id"], "Update") in events
    assert ("Invoice", invoice["Id"], "Create") in events

"""customer-360: GET /api/customers/{id} through ``splice serve``'s app, behind the API key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import httpx
import pytest

from runtime.server.app import create_app
from tests.support.flows import API_KEY, Integration

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(it: Integration) -> AsyncIterator[httpx.AsyncClient]:
    """The project served (every trigger running) and a client of it."""
    app = create_app(it.runtime, drain_timeout=5)
    async with app.lifespan():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://splice") as client:
            yield client


async def test_customer_view_404_and_api_key(integration: Integration) -> None:
    it = integration
    account = it.account("Zoë's Ürban Garden", BillingCity="Köln", Billing_Email__c="zoe@garden.example")
    seeds = it.product("Seeds", 3.35)
    pots = it.product("Pots", 12.5)
    opp_paid = it.opportunity(account, [{"product": seeds, "Quantity": 10}], name="Paid deal")
    opp_open = it.opportunity(account, [{"product": pots, "Quantity": 3}], name="Open deal",
                              close_date="2026-05-15")
    for opp in (opp_paid, opp_open):
        assert (await it.run("opportunity-to-invoice", it.record("Opportunity", opp))).status == "completed"
    paid_invoice = it.company.tables["Invoice"][it.record("Opportunity", opp_paid)["QuickBooks_Invoice_Id__c"]]
    open_invoice = it.company.tables["Invoice"][it.record("Opportunity", opp_open)["QuickBooks_Invoice_Id__c"]]
    it.company.create("Payment", {"CustomerRef": paid_invoice["CustomerRef"], "TotalAmt": Decimal("43.50"),
                                  "TxnDate": "2026-04-10", "Line": [
                                      {"Amount": Decimal("33.50"), "LinkedTxn": [{"TxnId": paid_invoice["Id"], "TxnType": "Invoice"}]},
                                      {"Amount": Decimal("10.00"), "LinkedTxn": [{"TxnId": open_invoice["Id"], "TxnType": "Invoice"}]},
                                  ]}, {})
    headers = {"x-api-key": API_KEY}
    async with serving(it) as client:
        view = await client.get(f"/api/customers/{account}", headers=headers)
        unknown = await client.get("/api/customers/001000000000000AAA", headers=headers)
        malformed = await client.get("/api/customers/not-an-id", headers=headers)
        no_key = await client.get(f"/api/customers/{account}")
        wrong_key = await client.get(f"/api/customers/{account}", headers={"x-api-key": "guess"})
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["account"]["id"] == account and body["account"]["name"] == "Zoë's Ürban Garden"
    assert body["account"]["billingAddress"]["city"] == "Köln"
    assert body["customer"]["displayName"] == "Zoë's Ürban Garden"
    assert [i["opportunityId"] for i in body["invoices"]["paid"]] == [opp_paid]
    [still_open] = body["invoices"]["open"]
    assert (still_open["opportunityId"], still_open["total"], still_open["balance"]) == (opp_open, 37.5, 27.5)
    assert [(p["amount"], sorted(p["invoiceIds"])) for p in body["payments"]] == [
        (43.5, sorted([paid_invoice["Id"], open_invoice["Id"]]))]
    assert body["totals"]["invoiced"] == 71 and body["totals"]["paid"] == 43.5
    assert body["totals"]["outstanding"] == 27.5 and body["totals"]["openInvoices"] == 1
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "NOT_FOUND"
    assert malformed.status_code == 404
    assert no_key.status_code == 401 and wrong_key.status_code == 401

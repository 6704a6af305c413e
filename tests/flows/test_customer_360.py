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


ACCOUNT = {"Id": "001000000000001AAA", "Name": "Stubbed Ltd", "QB_Customer_Id__c": "58"}


def test_money_is_rounded_half_up_to_cents_by_the_library(splice_run, mock_step) -> None:
    """The plugin's stubs per step label stand in for both systems: amounts as QuickBooks sends
    them (text, more than two decimals) come out rounded half up to cents by lib/billing.jsonata."""
    mock_step("read-account", [ACCOUNT])
    mock_step("read-customer", [{"Id": "58", "DisplayName": "Stubbed Ltd", "Balance": "10.005"}])
    mock_step("read-invoices", [
        {"Id": "7", "TotalAmt": "20.125", "Balance": "10.005", "DueDate": "2000-01-01"},
        {"Id": "8", "TotalAmt": "5.50", "Balance": "0"}])
    mock_step("read-payments", [{"Id": "9", "TotalAmt": "15.6249", "UnappliedAmt": "0.115",
                                 "Line": [{"LinkedTxn": [{"TxnId": "7", "TxnType": "Invoice"}]}]}])
    mock_step("read-projects", [])
    run = splice_run("customer-360", None, attributes={"method": "GET",
                                                       "pathParams": {"accountId": ACCOUNT["Id"]}})
    run.assert_completed()
    view = run.payload
    [still_open] = view["invoices"]["open"]
    assert (still_open["total"], still_open["balance"], still_open["paid"]) == (20.13, 10.01, 10.12)
    assert view["customer"]["balance"] == 10.01
    assert [(p["amount"], p["unapplied"], p["invoiceIds"]) for p in view["payments"]] == [(15.62, 0.12, ["7"])]
    assert view["totals"] == {"invoiced": 25.63, "paid": 15.62, "outstanding": 10.01, "overdue": 10.01,
                              "openInvoices": 1}
    assert run.call("read-invoices").params["binds"] == {"id": "58"}
    assert [call.label for call in run.calls] == ["read-account", "read-customer", "read-invoices",
                                                  "read-payments", "read-projects"]
    assert all(call.stubbed for call in run.calls)

"""The emulator's multi-currency: the company preference, one currency per customer, transaction
currency and exchange rate, home amounts, and the ``exchangerate`` resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.quickbooks.emulator import create_app
from tests.support.quickbooks import CLIENT_ID, CLIENT_SECRET, REALM, SEED_REFRESH_TOKEN

pytestmark = pytest.mark.anyio
API = f"/v3/company/{REALM}"


async def _client(app: Any) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://qb.test")
    token = await client.post("/oauth2/v1/tokens/bearer", auth=(CLIENT_ID, CLIENT_SECRET),
                              data={"grant_type": "refresh_token", "refresh_token": SEED_REFRESH_TOKEN})
    client.headers.update({"Authorization": f"Bearer {token.json()['access_token']}",
                           "Accept": "application/json"})
    return client


@pytest.fixture
async def multi(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """A company with multi-currency on and 1 EUR = 1.085 USD."""
    client = await _client(create_app(refresh_token=SEED_REFRESH_TOKEN, multicurrency={"EUR": "1.085"}))
    yield client
    await client.aclose()


@pytest.fixture
async def home_only(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    client = await _client(create_app(refresh_token=SEED_REFRESH_TOKEN))
    yield client
    await client.aclose()


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["Fault"]["Error"][0]
    return error


async def _hours(client: httpx.AsyncClient) -> str:
    found = await client.get(f"{API}/query", params={"query": "select * from Item where Name = 'Hours'"})
    return str(found.json()["QueryResponse"]["Item"][0]["Id"])


async def _invoice(client: httpx.AsyncClient, customer: str, **extra: Any) -> httpx.Response:
    line = {"DetailType": "SalesItemLineDetail", "Amount": 150,
            "SalesItemLineDetail": {"ItemRef": {"value": await _hours(client)}, "Qty": 2, "UnitPrice": 75}}
    return await client.post(f"{API}/invoice", json={"CustomerRef": {"value": customer}, "Line": [line],
                                                     **extra})


async def test_preferences_say_multicurrency_and_the_home_currency(multi: httpx.AsyncClient,
                                                                   home_only: httpx.AsyncClient) -> None:
    on = (await multi.get(f"{API}/preferences")).json()["Preferences"]["CurrencyPrefs"]
    off = (await home_only.get(f"{API}/preferences")).json()["Preferences"]["CurrencyPrefs"]
    assert on == {"MultiCurrencyEnabled": True, "HomeCurrency": {"value": "USD"}}
    assert off == {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": "USD"}}


async def test_a_eur_invoice_takes_the_company_rate_and_home_amounts(multi: httpx.AsyncClient) -> None:
    made = await multi.post(f"{API}/customer", json={"DisplayName": "Euro Buyer", "CurrencyRef": {"value": "EUR"}})
    assert made.json()["Customer"]["CurrencyRef"] == {"value": "EUR", "name": "Euro"}
    invoice = (await _invoice(multi, made.json()["Customer"]["Id"])).json()["Invoice"]
    assert invoice["CurrencyRef"] == {"value": "EUR", "name": "Euro"}
    assert Decimal(str(invoice["ExchangeRate"])) == Decimal("1.085")
    assert Decimal(str(invoice["TotalAmt"])) == Decimal("150")
    assert Decimal(str(invoice["HomeTotalAmt"])) == Decimal("162.75")
    assert Decimal(str(invoice["HomeBalance"])) == Decimal("162.75")
    given = (await _invoice(multi, made.json()["Customer"]["Id"], ExchangeRate=1.2)).json()["Invoice"]
    assert Decimal(str(given["HomeTotalAmt"])) == Decimal("180.00")
    # A payment of part of it lowers the home balance too.
    paid = await multi.post(f"{API}/payment", json={
        "CustomerRef": {"value": made.json()["Customer"]["Id"]}, "TotalAmt": 50,
        "Line": [{"Amount": 50, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    assert paid.status_code == 200, paid.text
    after = (await multi.get(f"{API}/invoice/{invoice['Id']}")).json()["Invoice"]
    assert Decimal(str(after["HomeBalance"])) == Decimal("108.50")


async def test_a_home_currency_invoice_in_a_multicurrency_company(multi: httpx.AsyncClient) -> None:
    invoice = (await _invoice(multi, "11")).json()["Invoice"]
    assert invoice["CurrencyRef"]["value"] == "USD" and Decimal(str(invoice["ExchangeRate"])) == 1
    assert Decimal(str(invoice["HomeTotalAmt"])) == Decimal(str(invoice["TotalAmt"]))


async def test_the_transaction_currency_must_be_the_customers(multi: httpx.AsyncClient) -> None:
    """Customer 11 is in dollars: a EUR invoice for it is refused."""
    error = _error(await _invoice(multi, "11", CurrencyRef={"value": "EUR"}))
    assert error["code"] == "6000" and error["element"] == "CurrencyRef"
    assert "must be the same as the customer's currency (USD)" in error["Detail"]


async def test_a_customers_currency_never_changes(multi: httpx.AsyncClient) -> None:
    made = (await multi.post(f"{API}/customer", json={"DisplayName": "Fixed", "CurrencyRef": {"value": "EUR"}})).json()
    customer = made["Customer"]
    error = _error(await multi.post(f"{API}/customer", json={
        "Id": customer["Id"], "SyncToken": customer["SyncToken"], "sparse": True,
        "CurrencyRef": {"value": "USD"}}))
    assert error["code"] == "6000" and "can't change the currency of a customer" in error["Detail"]
    # A full update that leaves CurrencyRef out keeps the currency.
    kept = await multi.post(f"{API}/customer", json={"Id": customer["Id"], "SyncToken": customer["SyncToken"],
                                                     "DisplayName": "Fixed Renamed"})
    assert kept.json()["Customer"]["CurrencyRef"]["value"] == "EUR"


async def test_a_home_currency_company_refuses_a_foreign_currency(home_only: httpx.AsyncClient) -> None:
    error = _error(await home_only.post(f"{API}/customer", json={"DisplayName": "Abroad",
                                                                 "CurrencyRef": {"value": "EUR"}}))
    assert error["code"] == "6000" and "Multicurrency is not enabled" in error["Detail"]
    error = _error(await _invoice(home_only, "11", CurrencyRef={"value": "EUR"}))
    assert error["code"] == "6000"
    invoice = (await _invoice(home_only, "11", CurrencyRef={"value": "USD"})).json()["Invoice"]
    assert invoice["CurrencyRef"]["value"] == "USD" and "HomeTotalAmt" not in invoice
    assert _error(await home_only.get(f"{API}/exchangerate", params={"sourcecurrencycode": "EUR"}))["code"] == "6000"


async def test_an_unknown_currency_is_an_invalid_reference(multi: httpx.AsyncClient) -> None:
    error = _error(await multi.post(f"{API}/customer", json={"DisplayName": "Odd", "CurrencyRef": {"value": "XYZ"}}))
    assert (error["code"], error["element"]) == ("2500", "CurrencyRef")


async def test_the_exchangerate_resource(multi: httpx.AsyncClient) -> None:
    answer = await multi.get(f"{API}/exchangerate", params={"sourcecurrencycode": "EUR", "asofdate": "2026-03-31"})
    rate = answer.json()["ExchangeRate"]
    assert (rate["SourceCurrencyCode"], rate["TargetCurrencyCode"], rate["AsOfDate"]) == ("EUR", "USD", "2026-03-31")
    assert Decimal(str(rate["Rate"])) == Decimal("1.085") and "time" in answer.json()
    assert _error(await multi.get(f"{API}/exchangerate"))["code"] == "2020"
    assert _error(await multi.get(f"{API}/exchangerate", params={"sourcecurrencycode": "EUR",
                                                                "asofdate": "31/03/2026"}))["code"] == "2010"


async def test_the_control_api_turns_multicurrency_on(home_only: httpx.AsyncClient) -> None:
    answer = await home_only.post("/_emulator/multicurrency", json={"rates": {"eur": "1.1"}})
    assert answer.json() == {"enabled": True, "rates": {"EUR": "1.1"}}
    rate = (await home_only.get(f"{API}/exchangerate", params={"sourcecurrencycode": "EUR"})).json()
    assert Decimal(str(rate["ExchangeRate"]["Rate"])) == Decimal("1.1")
    assert (await home_only.post("/_emulator/multicurrency", json={"rates": {"EUR": "x"}})).status_code == 400


@pytest.mark.parametrize("resource", ["estimate", "salesreceipt", "creditmemo"])
async def test_every_sales_form_is_in_its_customers_currency(resource: str, multi: httpx.AsyncClient,
                                                              home_only: httpx.AsyncClient) -> None:
    """Estimates, sales receipts and credit memos follow the invoice's rule: a home-currency
    company refuses a foreign currency, a multi-currency one a currency not the customer's; one
    without CurrencyRef is in the customer's, at the company's rate."""
    async def post(client: httpx.AsyncClient, customer: str, **extra: Any) -> httpx.Response:
        line = {"DetailType": "SalesItemLineDetail", "Amount": 150,
                "SalesItemLineDetail": {"ItemRef": {"value": await _hours(client)}, "Qty": 2,
                                        "UnitPrice": 75, "TaxCodeRef": {"value": "NON"}}}
        return await client.post(f"{API}/{resource}", json={"CustomerRef": {"value": customer},
                                                             "Line": [line], **extra})

    error = _error(await post(home_only, "11", CurrencyRef={"value": "EUR"}))
    assert error["code"] == "6000" and "Multicurrency is not enabled" in error["Detail"]
    error = _error(await post(multi, "11", CurrencyRef={"value": "EUR"}))
    assert error["code"] == "6000" and "must be the same as the customer's currency (USD)" in error["Detail"]
    euro = (await multi.post(f"{API}/customer", json={"DisplayName": "Euro Form",
                                                       "CurrencyRef": {"value": "EUR"}})).json()["Customer"]
    made = await post(multi, euro["Id"])
    assert made.status_code == 200, made.text
    [form] = [v for k, v in made.json().items() if k != "time"]
    assert form["CurrencyRef"] == {"value": "EUR", "name": "Euro"}
    assert Decimal(str(form["ExchangeRate"])) == Decimal("1.085")
    assert Decimal(str(form["HomeTotalAmt"])) == Decimal("162.75")

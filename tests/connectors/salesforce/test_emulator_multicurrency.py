"""The emulator's multi-currency org: CurrencyIsoCode on accounts, opportunities and their line
items (described, defaulted, checked), absent from a single-currency org."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.salesforce.emulator import create_app

pytestmark = pytest.mark.anyio

V = "/services/data/v66.0"


async def _open(app: Any) -> httpx.AsyncClient:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://acme.my.salesforce.com")
    token = (await http.post("/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": "c", "client_secret": "s"})).json()
    http.headers["Authorization"] = f"Bearer {token['access_token']}"
    return http


@pytest.fixture
async def multi() -> AsyncIterator[httpx.AsyncClient]:
    http = await _open(create_app(demo=True, multicurrency=("USD", "EUR")))
    yield http
    await http.aclose()


@pytest.fixture
async def single() -> AsyncIterator[httpx.AsyncClient]:
    http = await _open(create_app(demo=True))
    yield http
    await http.aclose()


async def test_describe_lists_currency_iso_code_only_with_multicurrency(multi: httpx.AsyncClient,
                                                                        single: httpx.AsyncClient) -> None:
    for obj in ("Account", "Opportunity", "OpportunityLineItem"):
        fields = {f["name"]: f for f in (await multi.get(f"{V}/sobjects/{obj}/describe")).json()["fields"]}
        assert fields["CurrencyIsoCode"]["type"] == "picklist"
        assert [v["value"] for v in fields["CurrencyIsoCode"]["picklistValues"]] == ["USD", "EUR"]
        assert fields["CurrencyIsoCode"]["createable"] is (obj != "OpportunityLineItem")
        names = {f["name"] for f in (await single.get(f"{V}/sobjects/{obj}/describe")).json()["fields"]}
        assert "CurrencyIsoCode" not in names
    refused = await single.get(f"{V}/query", params={"q": "SELECT CurrencyIsoCode FROM Opportunity"})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALID_FIELD"


async def test_the_demo_has_a_won_eur_deal_of_a_eur_account(multi: httpx.AsyncClient) -> None:
    rows = (await multi.get(f"{V}/query", params={"q": (
        "SELECT Name, CurrencyIsoCode, Amount, Account.Name, Account.CurrencyIsoCode, Account.QB_Customer_Id__c, "
        "(SELECT CurrencyIsoCode FROM OpportunityLineItems) FROM Opportunity WHERE CurrencyIsoCode = 'EUR'")})).json()
    [deal] = rows["records"]
    assert deal["Account"]["Name"] == "Lumière Maison" and deal["Account"]["CurrencyIsoCode"] == "EUR"
    assert deal["Account"]["QB_Customer_Id__c"] == "47" and deal["Amount"] == 1120.0
    assert [li["CurrencyIsoCode"] for li in deal["OpportunityLineItems"]["records"]] == ["EUR"]
    others = (await multi.get(f"{V}/query", params={
        "q": "SELECT COUNT() FROM Opportunity WHERE CurrencyIsoCode != 'USD'"})).json()
    assert others["totalSize"] == 1  # the rest of the demo is in the corporate currency


async def test_new_records_default_to_the_corporate_currency_and_bad_codes_are_refused(
        multi: httpx.AsyncClient) -> None:
    made = await multi.post(f"{V}/sobjects/Account", json={"Name": "Default Currency"})
    account = (await multi.get(f"{V}/sobjects/Account/{made.json()['id']}")).json()
    assert account["CurrencyIsoCode"] == "USD"
    bad = await multi.post(f"{V}/sobjects/Account", json={"Name": "Yen", "CurrencyIsoCode": "JPY"})
    assert bad.status_code == 400
    assert bad.json()[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION" and bad.json()[0]["fields"] == ["CurrencyIsoCode"]


async def test_an_opportunity_with_products_keeps_its_currency(multi: httpx.AsyncClient) -> None:
    [deal] = (await multi.get(f"{V}/query", params={
        "q": "SELECT Id FROM Opportunity WHERE CurrencyIsoCode = 'EUR'"})).json()["records"]
    refused = await multi.patch(f"{V}/sobjects/Opportunity/{deal['Id']}", json={"CurrencyIsoCode": "USD"})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"

"""The emulator answers like QuickBooks: shapes, faults, rotation, limits, replay."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.quickbooks.emulator import SANDBOX_REFRESH_TOKEN, create_app
from connectors.quickbooks.emulator.webhooks import sign
from tests.support.quickbooks import CLIENT_ID, CLIENT_SECRET, REALM, SEED_REFRESH_TOKEN
from tests.support.servers import serve_in_thread
from tests.support.waiting import wait_for

pytestmark = pytest.mark.anyio
API = f"/v3/company/{REALM}"


@pytest.fixture
async def http(emulator: Any, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """A raw client with a valid access token."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator),
                                 base_url="http://qb.test") as client:
        token = await _refresh(client, SEED_REFRESH_TOKEN)
        client.headers.update({"Authorization": f"Bearer {token.json()['access_token']}",
                               "Accept": "application/json"})
        yield client


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/oauth2/v1/tokens/bearer", auth=(CLIENT_ID, CLIENT_SECRET),
                             data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def _code(response: httpx.Response) -> str:
    return str(response.json()["Fault"]["Error"][0]["code"])


async def test_refresh_rotates_and_the_old_token_stops_working(emulator: Any) -> None:
    """Every refresh hands out a new refresh token; the old one is then invalid_grant."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator),
                                 base_url="http://qb.test") as client:
        first = await _refresh(client, SEED_REFRESH_TOKEN)
        assert first.status_code == 200
        assert first.json()["expires_in"] == 3600
        assert first.json()["refresh_token"] != SEED_REFRESH_TOKEN
        again = await _refresh(client, SEED_REFRESH_TOKEN)
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        assert (await _refresh(client, first.json()["refresh_token"])).status_code == 200
        bad = await client.post("/oauth2/v1/tokens/bearer", auth=(CLIENT_ID, "nope"),
                                data={"grant_type": "refresh_token", "refresh_token": "x"})
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


async def test_missing_or_malformed_token_gets_the_gateway_envelope(emulator: Any) -> None:
    """The lower-case ``fault`` shape, 401."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator),
                                 base_url="http://qb.test") as client:
        response = await client.get(f"{API}/customer/11", headers={"Authorization": "Bearer x"})
    assert response.status_code == 401
    assert response.json()["fault"]["error"][0]["code"] == "3200"


async def test_duplicate_display_name_is_6240(http: httpx.AsyncClient) -> None:
    """Names are unique, case-insensitively, across customers."""
    response = await http.post(f"{API}/customer", json={"DisplayName": "cool cars"})
    assert response.status_code == 400 and _code(response) == "6240"


async def test_amount_must_match_qty_times_price_6070(http: httpx.AsyncClient) -> None:
    """The float-rounded amount is refused with QuickBooks' message."""
    line = {"DetailType": "SalesItemLineDetail", "Amount": 1861.07,
            "SalesItemLineDetail": {"ItemRef": {"value": "9"}, "Qty": 128.35, "UnitPrice": 14.5}}
    response = await http.post(f"{API}/invoice", json={"CustomerRef": {"value": "11"},
                                                       "Line": [line]})
    assert _code(response) == "6070"
    assert "Supplied value:1,861.07" in response.json()["Fault"]["Error"][0]["Message"]


async def test_duplicate_doc_number_is_6140(http: httpx.AsyncClient) -> None:
    """A reused DocNumber is refused unless allowduplicatedocnum is asked for."""
    body = {"CustomerRef": {"value": "11"}, "DocNumber": "SF-1", "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 75,
         "SalesItemLineDetail": {"ItemRef": {"value": "9"}, "Qty": 1, "UnitPrice": 75}}]}
    assert (await http.post(f"{API}/invoice", json=body)).status_code == 200
    assert _code(await http.post(f"{API}/invoice", json=body)) == "6140"
    allowed = await http.post(f"{API}/invoice", params={"include": "allowduplicatedocnum"}, json=body)
    assert allowed.status_code == 200


async def test_stale_synctoken_is_5010(http: httpx.AsyncClient) -> None:
    """Only the latest SyncToken may write."""
    ok = await http.post(f"{API}/customer", json={"Id": "11", "SyncToken": "0", "sparse": True,
                                                  "Notes": "a"})
    assert ok.json()["Customer"]["SyncToken"] == "1"
    stale = await http.post(f"{API}/customer", json={"Id": "11", "SyncToken": "0", "sparse": True,
                                                     "Notes": "b"})
    assert _code(stale) == "5010"


async def test_requestid_replays_the_first_answer(http: httpx.AsyncClient) -> None:
    """The same requestid twice: one customer, the same answer."""
    first = await http.post(f"{API}/customer", params={"requestid": "r-1"},
                            json={"DisplayName": "Once Only"})
    second = await http.post(f"{API}/customer", params={"requestid": "r-1"},
                             json={"DisplayName": "Once Only"})
    assert first.content == second.content and second.status_code == 200
    count = await http.get(f"{API}/query", params={
        "query": "select count(*) from Customer where DisplayName = 'Once Only'"})
    assert count.json()["QueryResponse"] == {"totalCount": 1}


async def test_query_language_subset(http: httpx.AsyncClient) -> None:
    """POST with application/text, ORDER BY, IN, LIKE, Sku selection, empty results."""
    response = await http.post(f"{API}/query", content="SELECT *, Sku FROM Item WHERE Name IN "
                               "('Hours', 'Consulting') ORDER BY Name DESC MAXRESULTS 10",
                               headers={"Content-Type": "application/text"})
    page = response.json()["QueryResponse"]
    assert [i["Name"] for i in page["Item"]] == ["Hours", "Consulting"]
    assert page["startPosition"] == 1 and page["maxResults"] == 2
    empty = await http.get(f"{API}/query", params={
        "query": "select * from Customer where DisplayName like 'Zz%'"})
    assert empty.json()["QueryResponse"] == {}
    bad = await http.get(f"{API}/query", params={"query": "select * from Customer where"})
    assert _code(bad) == "4000"


async def test_batch_over_30_items_is_refused(http: httpx.AsyncClient) -> None:
    """At most 30 items per batch request."""
    items = [{"bId": str(i), "Query": "select * from Term"} for i in range(31)]
    response = await http.post(f"{API}/batch", json={"BatchItemRequest": items})
    assert response.status_code == 400


async def test_rate_limits_answer_429_with_the_xml_body() -> None:
    """Over the per-realm budget: 429 and the real XML throttle body."""
    app = create_app(refresh_token=SEED_REFRESH_TOKEN, requests_per_minute=3, batch_per_minute=1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://qb.test") as client:
        token = (await _refresh(client, SEED_REFRESH_TOKEN)).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        statuses = [(await client.get(f"{API}/customer/11")).status_code for _ in range(4)]
        throttled = await client.get(f"{API}/customer/11")
    assert statuses == [200, 200, 200, 429]
    assert throttled.headers["content-type"].startswith("application/xml")
    assert b'<Error code="3001">' in throttled.content


async def test_authorize_redirects_with_code_state_and_realm(emulator: Any) -> None:
    """The consent page gives a one-time code bound to the redirect URI."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator),
                                 base_url="http://qb.test") as client:
        response = await client.get("/connect/oauth2", params={
            "client_id": CLIENT_ID, "redirect_uri": "http://localhost/cb", "state": "s1",
            "response_type": "code", "scope": "com.intuit.quickbooks.accounting"})
        location = httpx.URL(response.headers["location"])
        code = location.params["code"]
        assert location.params["state"] == "s1" and location.params["realmId"] == REALM
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://localhost/cb"}
        tokens = await client.post("/oauth2/v1/tokens/bearer", data=form,
                                   headers={"Authorization": f"Basic {basic}"})
        reused = await client.post("/oauth2/v1/tokens/bearer", data=form,
                                   headers={"Authorization": f"Basic {basic}"})
    assert tokens.status_code == 200 and "refresh_token" in tokens.json()
    assert reused.json()["error"] == "invalid_grant"


async def test_control_api_switches_faults_and_resets(emulator: Any, http: httpx.AsyncClient) -> None:
    """Faults are set over HTTP; reset brings the demo company back."""
    bad = await http.post("/_emulator/faults", json={"no_such_fault": 1})
    assert bad.status_code == 400
    switched = await http.post("/_emulator/faults", json={"fail-next": 1, "fail_status": 500})
    assert switched.json()["fail_next"] == 1
    failed = await http.get(f"{API}/customer/11")
    assert failed.status_code == 500 and _code(failed) == "10000"
    await http.post(f"{API}/customer", json={"DisplayName": "Temporary"})
    listed = await http.get("/_emulator/entities", params={"entity": "customer"})
    assert "Temporary" in [c["DisplayName"] for c in listed.json()["Customer"]]
    await http.post("/_emulator/reset")
    listed = await http.get("/_emulator/entities", params={"entity": "customer"})
    assert "Temporary" not in [c["DisplayName"] for c in listed.json()["Customer"]]
    token = (await http.post("/_emulator/tokens", json={})).json()
    assert token["realmId"] == REALM and token["refresh_token"]
    state = (await http.get("/_emulator/state")).json()
    assert state["refreshes"][REALM] == 1


def test_served_with_its_lifespan_the_emulator_posts_webhooks_by_itself() -> None:
    """Under a server (lifespan on), queued changes go out without being flushed by hand."""
    received: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    app = create_app(webhook_url="http://splice.test/webhooks/quickbooks", webhook_interval=0.02,
                     webhook_transport=httpx.MockTransport(receiver))
    with serve_in_thread(app) as base, httpx.Client(base_url=base) as client:
        token = client.post("/oauth2/v1/tokens/bearer", auth=(CLIENT_ID, CLIENT_SECRET), data={
            "grant_type": "refresh_token", "refresh_token": SANDBOX_REFRESH_TOKEN}).json()
        client.post(f"{API}/customer", json={"DisplayName": "Pushed"},
                    headers={"Authorization": f"Bearer {token['access_token']}"})
        wait_for(lambda: received, timeout=5, what="the webhook delivery", interval=0.01)
    (delivery,) = received
    assert delivery.headers["intuit-signature"] == sign(delivery.content, "emulator-verifier")
    entities = json.loads(delivery.content)["eventNotifications"][0]["dataChangeEvent"]["entities"]
    assert [(e["name"], e["operation"]) for e in entities] == [("Customer", "Create")]


async def test_the_same_requestid_twice_at_once_writes_once(emulator: Any, http: httpx.AsyncClient) -> None:
    """A retry that arrives while the first request still runs waits for it and replays it."""
    import anyio

    answers: list[httpx.Response] = []

    async def send() -> None:
        answers.append(await http.post(f"{API}/customer", params={"requestid": "same"},
                                       json={"DisplayName": "Concurrent Once"}))

    emulator.state.emulator.faults.update({"latency": 0.01})
    async with anyio.create_task_group() as tg:
        tg.start_soon(send)
        tg.start_soon(send)
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].content == answers[1].content
    names = [c["DisplayName"] for c in emulator.state.emulator.companies[REALM].tables["Customer"].values()]
    assert names.count("Concurrent Once") == 1


async def test_company_info_and_preferences(http: httpx.AsyncClient) -> None:
    """Read-only company settings a sync looks at (custom fields, currency, sales tax)."""
    info = await http.get(f"{API}/companyinfo/{REALM}")
    assert info.json()["CompanyInfo"]["Country"] == "USA"
    prefs = (await http.get(f"{API}/preferences")).json()["Preferences"]
    assert prefs["CurrencyPrefs"]["MultiCurrencyEnabled"] is False
    refused = await http.post(f"{API}/companyinfo", json={"CompanyName": "x"})
    assert _code(refused) == "500"


async def test_a_customer_name_a_vendor_or_employee_has_is_6240(http: httpx.AsyncClient) -> None:
    """DisplayName is unique across customers, vendors and employees, inactive ones too."""
    assert (await http.post(f"{API}/vendor", json={"DisplayName": "Pine Supplies"})).status_code == 200
    employee = await http.post(f"{API}/employee", json={"GivenName": "Ada", "FamilyName": "Byron"})
    assert employee.status_code == 200
    await http.post(f"{API}/employee", json={"Id": employee.json()["Employee"]["Id"],
                                             "SyncToken": "0", "sparse": True, "Active": False})
    for name in ("pine supplies", "Ada Byron"):
        response = await http.post(f"{API}/customer", json={"DisplayName": name})
        assert response.status_code == 400 and _code(response) == "6240"
        error = response.json()["Fault"]["Error"][0]
        assert error["Message"] == "Duplicate Name Exists Error"
        assert "Another customer, vendor or employee is already using this name" in error["Detail"]
        assert response.json()["Fault"]["type"] == "ValidationFault"


async def test_names_with_a_colon_tab_or_newline_are_refused(http: httpx.AsyncClient) -> None:
    """``:`` separates the levels of a FullyQualifiedName: QuickBooks refuses it in a name."""
    for entity, body in (("customer", {"DisplayName": "Acme: West"}),
                         ("customer", {"DisplayName": "Acme West", "CompanyName": "Acme\tWest"}),
                         ("vendor", {"DisplayName": "Pine\nSupplies"}),
                         ("item", {"Name": "Audit: annual", "Type": "Service",
                                   "IncomeAccountRef": {"value": "1"}})):
        response = await http.post(f"{API}/{entity}", json=body)
        assert response.status_code == 400 and _code(response) == "2050", body
        assert response.json()["Fault"]["type"] == "ValidationFault"
    assert (await http.post(f"{API}/customer", json={"DisplayName": "Acme West"})).status_code == 200


async def test_malformed_email_addresses_are_refused(http: httpx.AsyncClient) -> None:
    for address in ("ap.acme.example", "ap@acme", "ap @acme.example"):
        response = await http.post(f"{API}/customer", json={"DisplayName": f"Mail {address}",
                                                            "PrimaryEmailAddr": {"Address": address}})
        assert response.status_code == 400 and _code(response) == "2050", address
        assert response.json()["Fault"]["Error"][0]["element"] == "PrimaryEmailAddr.Address"
    ok = await http.post(f"{API}/customer", json={"DisplayName": "Mail ok",
                                                  "PrimaryEmailAddr": {"Address": "ap@acme.example"}})
    assert ok.status_code == 200
    line = {"DetailType": "SalesItemLineDetail", "Amount": 75,
            "SalesItemLineDetail": {"ItemRef": {"value": "9"}, "Qty": 1, "UnitPrice": 75}}
    bad = await http.post(f"{API}/invoice", json={"CustomerRef": {"value": "11"}, "Line": [line],
                                                  "BillEmail": {"Address": "billing"}})
    assert bad.status_code == 400 and _code(bad) == "2050"


async def test_doc_number_longer_than_21_characters_is_refused(http: httpx.AsyncClient) -> None:
    line = {"DetailType": "SalesItemLineDetail", "Amount": 75,
            "SalesItemLineDetail": {"ItemRef": {"value": "9"}, "Qty": 1, "UnitPrice": 75}}
    body = {"CustomerRef": {"value": "11"}, "Line": [line], "DocNumber": "SF-" + "0" * 19}
    response = await http.post(f"{API}/invoice", json=body)
    assert response.status_code == 400 and _code(response) == "2050"
    error = response.json()["Fault"]["Error"][0]
    assert error["element"] == "DocNumber" and "Max:21" in error["Detail"] and "length:22" in error["Detail"]
    assert (await http.post(f"{API}/invoice", json={**body, "DocNumber": "SF-" + "0" * 18})).status_code == 200


async def test_filtering_on_a_property_quickbooks_cannot_filter_on_is_4001(http: httpx.AsyncClient) -> None:
    for query in ("select * from Invoice where PrivateNote = 'x'",
                  "select * from Customer where BillAddr.City = 'Boston'",
                  "select * from Item where Description like '%audit%'"):
        response = await http.post(f"{API}/query", content=query,
                                   headers={"Content-Type": "application/text"})
        assert response.status_code == 400 and _code(response) == "4001", query
        assert "is not queryable" in response.json()["Fault"]["Error"][0]["Detail"]
    fine = await http.post(f"{API}/query", headers={"Content-Type": "application/text"},
                           content="select * from Invoice where DocNumber = 'x' and TxnDate >= '2026-01-01'")
    assert fine.status_code == 200

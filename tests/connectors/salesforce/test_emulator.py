"""The emulator on its own: real paths, shapes, error envelopes and headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from connectors.salesforce.emulator import create_app
from runtime.testing import wait_until

pytestmark = pytest.mark.anyio

V = "/services/data/v66.0"


@pytest.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """An authenticated raw HTTP client on a fresh emulator with demo data."""
    app = create_app(demo=True, page_size=4, long_poll_timeout=0.05)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://acme.my.salesforce.com") as http:
        token = (await http.post("/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": "c", "client_secret": "s"})).json()
        http.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield http, app.state.emulator


async def _soql(http: httpx.AsyncClient, q: str) -> dict[str, Any]:
    response = await http.get(f"{V}/query", params={"q": q})
    assert response.status_code == 200, response.text
    return response.json()


async def test_versions_token_and_session_errors() -> None:
    """Versions need no session; a bad grant and a bad session get Salesforce's envelopes."""
    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://x.my.salesforce.com") as http:
        versions = (await http.get("/services/data/")).json()
        assert {"label": "Spring '26", "url": "/services/data/v66.0", "version": "66.0"} in versions
        bad = await http.post("/services/oauth2/token", data={"grant_type": "password"})
        assert bad.status_code == 400 and bad.json()["error"] == "unsupported_grant_type"
        denied = await http.get(f"{V}/limits", headers={"Authorization": "Bearer nope"})
        assert denied.status_code == 401
        assert denied.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        token = (await http.post("/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": "c", "client_secret": "s"})).json()
    assert token["instance_url"] == "https://x.my.salesforce.com" and "expires_in" not in token
    assert token["issued_at"].isdigit() and token["id"].endswith(app.state.emulator.org.user_id)


async def test_limits_header_and_describe(api: Any) -> None:
    """Every call reports api-usage; describe lists custom external ids and child relationships."""
    http, emu = api
    described = await http.get(f"{V}/sobjects/Opportunity/describe/")
    assert described.headers["Sforce-Limit-Info"] == f"api-usage={emu.faults.api_used}/15000"
    body = described.json()
    fields = {f["name"]: f for f in body["fields"]}
    assert fields["QuickBooks_Invoice_Id__c"]["externalId"] and fields["IsWon"]["calculated"]
    assert not fields["IsWon"]["createable"] and fields["AccountId"]["relationshipName"] == "Account"
    assert {"childSObject": "OpportunityLineItem", "field": "OpportunityId", "relationshipName":
            "OpportunityLineItems", "cascadeDelete": False} in body["childRelationships"]
    await http.post(f"{V}/sobjects/Account/", json={"Name": "Custom", "Region__c": "EMEA"})
    fields = {f["name"] for f in (await http.get(f"{V}/sobjects/Account/describe")).json()["fields"]}
    assert "Region__c" in fields


async def test_soql_subset(api: Any) -> None:
    """WHERE with AND/OR/NOT/IN/LIKE/NULL, datetime literals, ORDER BY NULLS LAST, LIMIT/OFFSET, COUNT()."""
    http, emu = api
    total = emu.org.records["Opportunity"]
    won = [o for o in total.values() if o["IsWon"]]
    assert (await _soql(http, "SELECT COUNT() FROM Opportunity WHERE IsWon = TRUE"))["totalSize"] == len(won)
    assert all(o["StageName"] == "Closed Won" for o in won) and won
    rows = (await _soql(http, "select name from opportunity where not (stagename in ('Closed Won','Closed Lost')) "
                              "and (name like 'acme%' or name like '%order 2') and Description = null "
                              "and SystemModstamp > 2020-01-01T00:00:00+01:00 order by Name desc limit 3"))
    names = [r["Name"] for r in rows["records"]]
    assert names == sorted(names, reverse=True) and len(names) <= 3
    acme = next(a for a in emu.org.records["Account"].values() if a["Name"] == "Acme Corp")
    by_short_id = await _soql(http, f"SELECT Name FROM Account WHERE Id = '{acme['Id'][:15]}'")
    assert [r["Name"] for r in by_short_id["records"]] == ["Acme Corp"]
    page = await _soql(http, "SELECT Name FROM Account ORDER BY Name LIMIT 2 OFFSET 1")
    assert [r["Name"] for r in page["records"]] == ["Globex", "Initech"]
    nulls = await _soql(http, "SELECT Name, ParentId FROM Account ORDER BY ParentId NULLS LAST, Name")
    assert nulls["done"] is False and nulls["nextRecordsUrl"].startswith(f"{V}/query/01g")
    more = (await http.get(nulls["nextRecordsUrl"])).json()
    assert more["done"] is True and len(nulls["records"]) + len(more["records"]) == 8
    assert (await http.get(nulls["nextRecordsUrl"])).json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


async def test_ids_in_a_list_match_in_either_form_and_not_in_excludes_them(api: Any) -> None:
    """``Id IN (...)`` finds records by their 15- or 18-character ids, ``AccountId IN`` by the
    reference, and ``NOT IN`` leaves exactly those out."""
    http, emu = api
    accounts = {a["Name"]: a for a in emu.org.records["Account"].values()}
    acme, globex = accounts["Acme Corp"], accounts["Globex"]
    ids = f"'{acme['Id'][:15]}', '{globex['Id']}'"
    found = await _soql(http, f"SELECT Name FROM Account WHERE Id IN ({ids}) ORDER BY Name")
    assert [r["Name"] for r in found["records"]] == ["Acme Corp", "Globex"]
    rest = await _soql(http, f"SELECT COUNT() FROM Account WHERE Id NOT IN ({ids})")
    assert rest["totalSize"] == len(emu.org.records["Account"]) - 2
    theirs = [o for o in emu.org.records["Opportunity"].values()
              if o.get("AccountId") in (acme["Id"], globex["Id"])]
    by_account = await _soql(http, f"SELECT COUNT() FROM Opportunity WHERE AccountId IN ({ids})")
    assert by_account["totalSize"] == len(theirs) > 0


async def test_derived_fields_and_rollup(api: Any) -> None:
    """Stage drives IsClosed/IsWon; line items roll up into Amount; SystemModstamp moves."""
    http, emu = api
    entry = next(iter(emu.org.records["PricebookEntry"].values()))
    opp = (await http.post(f"{V}/sobjects/Opportunity", json={
        "Name": "Roll-up", "StageName": "Negotiation/Review", "CloseDate": "2026-06-30"})).json()["id"]
    before = (await http.get(f"{V}/sobjects/Opportunity/{opp}")).json()
    assert before["IsClosed"] is False and before["Probability"] == 90.0 and before["Amount"] is None
    line = await http.post(f"{V}/sobjects/OpportunityLineItem", json={
        "OpportunityId": opp, "PricebookEntryId": entry["Id"], "Quantity": 4, "UnitPrice": 10})
    assert line.status_code == 201
    both = await http.post(f"{V}/sobjects/OpportunityLineItem", json={
        "OpportunityId": opp, "PricebookEntryId": entry["Id"], "Quantity": 1, "UnitPrice": 1, "TotalPrice": 1})
    assert both.json()[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert (await http.patch(f"{V}/sobjects/Opportunity/{opp}", json={"StageName": "Closed Won"})).status_code == 204
    after = (await http.get(f"{V}/sobjects/Opportunity/{opp}")).json()
    assert after["IsWon"] and after["Amount"] == 40.0 and after["HasOpportunityLineItem"]
    assert after["SystemModstamp"] >= before["SystemModstamp"]
    readonly = await http.patch(f"{V}/sobjects/Opportunity/{opp}", json={"IsWon": False})
    assert readonly.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


async def test_upsert_and_collections_edges(api: Any) -> None:
    """Id in an upsert body, unknown ext-id fields, too many records: Salesforce's errors."""
    http, _ = api
    with_id = await http.patch(f"{V}/sobjects/Account/QB_Customer_Id__c/1", json={"Id": "001", "Name": "x"})
    assert with_id.status_code == 400
    unknown = await http.patch(f"{V}/sobjects/Account/Nope__c/1", json={"Name": "x"})
    assert unknown.status_code == 404 and unknown.json()[0]["errorCode"] == "NOT_FOUND"
    many = await http.post(f"{V}/composite/sobjects", json={"records": [{"attributes": {"type": "Account"},
                                                                        "Name": str(i)} for i in range(201)]})
    assert many.status_code == 400
    retrieved = await http.get(f"{V}/composite/sobjects/Account", params={"ids": "001Rx0000000000AAA",
                                                                         "fields": "Name"})
    assert retrieved.json() == [None]


async def test_bulk_query_paging_ends_with_literal_null(api: Any) -> None:
    """Results are CSV with Sforce-NumberOfRecords; the last page's Sforce-Locator is "null"."""
    http, _ = api
    job = (await http.post(f"{V}/jobs/query", json={"operation": "query",
                                                     "query": "SELECT Id, Name FROM Account"})).json()
    assert job["state"] == "UploadComplete" and job["id"].startswith("750")
    states = [(await http.get(f"{V}/jobs/query/{job['id']}")).json()["state"] for _ in range(2)]
    assert states == ["InProgress", "JobComplete"]
    first = await http.get(f"{V}/jobs/query/{job['id']}/results", params={"maxRecords": 4})
    assert first.headers["Sforce-NumberOfRecords"] == "4" and first.headers["Sforce-Locator"] != "null"
    assert first.text.splitlines()[0] == "Id,Name"
    last = await http.get(f"{V}/jobs/query/{job['id']}/results",
                          params={"maxRecords": 4, "locator": first.headers["Sforce-Locator"]})
    assert last.headers["Sforce-Locator"] == "null" and last.headers["Sforce-NumberOfRecords"] == "4"
    refused = await http.post(f"{V}/jobs/query", json={
        "operation": "query", "query": "SELECT Id, (SELECT Id FROM Contacts) FROM Account"})
    assert refused.status_code == 400


async def test_cometd_protocol(api: Any) -> None:
    """Handshake, subscribe with replay, connect delivers events; unknown clients must re-handshake."""
    http, emu = api
    hand = (await http.post("/cometd/66.0", json=[{"channel": "/meta/handshake", "version": "1.0"}])).json()[0]
    client_id = hand["clientId"]
    sub = (await http.post("/cometd/66.0", json=[{"channel": "/meta/subscribe", "clientId": client_id,
                                                  "subscription": "/data/ContactChangeEvent",
                                                  "ext": {"replay": {"/data/ContactChangeEvent": -1}}}])).json()
    assert sub[0]["successful"] is True
    await http.post(f"{V}/sobjects/Contact", json={"LastName": "Streamed"},
                    headers={"Sforce-Call-Options": "client=crm"})
    replies = (await http.post("/cometd/66.0", json=[{"channel": "/meta/connect", "clientId": client_id,
                                                      "connectionType": "long-polling"}])).json()
    event = replies[0]["data"]
    assert event["payload"]["LastName"] == "Streamed"
    assert event["payload"]["ChangeEventHeader"]["changeOrigin"] == "com/salesforce/api/rest/66.0;client=crm"
    assert event["event"]["replayId"] == emu.org.events[-1]["replayId"] and replies[-1]["successful"]
    gone = (await http.post("/cometd/66.0", json=[{"channel": "/meta/connect", "clientId": "stale"}])).json()[0]
    assert gone["error"] == "403::Unknown client" and gone["advice"]["reconnect"] == "handshake"
    bad = (await http.post("/cometd/66.0", json=[{"channel": "/meta/subscribe", "clientId": client_id,
                                                  "subscription": "/data/ContactChangeEvent",
                                                  "ext": {"replay": {"/data/ContactChangeEvent": 10**9}}}])).json()
    assert "replayId" in bad[0]["error"]


async def test_cometd_connect_waits_while_only_other_channels_change() -> None:
    """A long poll answers when its own channel has an event, not when another channel has one:
    an empty answer to every change anywhere in the org would have the client connect again at
    once, over and over (an idle sandbox burnt a core that way)."""
    app = create_app(long_poll_timeout=60)
    emu = app.state.emulator
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://acme.my.salesforce.com") as http:
        token = (await http.post("/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": "c", "client_secret": "s"})).json()
        http.headers["Authorization"] = f"Bearer {token['access_token']}"
        hand = (await http.post("/cometd/66.0", json=[{"channel": "/meta/handshake"}])).json()[0]
        client_id = hand["clientId"]
        await http.post("/cometd/66.0", json=[{"channel": "/meta/subscribe", "clientId": client_id,
                                               "subscription": "/data/ContactChangeEvent",
                                               "ext": {"replay": {"/data/ContactChangeEvent": -1}}}])
        await http.post(f"{V}/sobjects/Account", json={"Name": "Elsewhere"})  # newest: other channel
        answers: list[list[dict[str, Any]]] = []

        async def connect() -> None:
            response = await http.post("/cometd/66.0", json=[{"channel": "/meta/connect", "clientId": client_id,
                                                              "connectionType": "long-polling"}])
            answers.append(response.json())

        def answered_or_held() -> bool:
            return bool(answers or emu.org.waiting)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(connect)
                await wait_until(answered_or_held, what="the connect to answer or wait")
                assert answers == [], "the connect answered at once, with no event on its channel"
                # Changes on other channels wake the held connect, which looks and holds again.
                for name in ("Elsewhere 2", "Elsewhere 3"):
                    created = await http.post(f"{V}/sobjects/Account", json={"Name": name})
                    assert created.status_code == 201
                    await wait_until(answered_or_held, what="the connect to look at the new event")
                    assert answers == [], "the connect answered an event of another channel"
                stats = (await http.get("/_emulator/stats")).json()
                assert stats["long_polls"] == 1 and answers == []
                await http.post(f"{V}/sobjects/Contact", json={"LastName": "Mine"})
                await wait_until(lambda: answers, what="the connect to deliver its channel's event")
    (delivered, meta) = answers[0]
    assert delivered["channel"] == "/data/ContactChangeEvent"
    assert delivered["data"]["payload"]["LastName"] == "Mine"
    assert delivered["data"]["event"]["replayId"] == emu.org.events[-1]["replayId"]
    assert meta["channel"] == "/meta/connect" and meta["successful"] is True

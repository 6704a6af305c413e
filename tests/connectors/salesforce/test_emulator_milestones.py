"""The custom object Project_Milestone__c in the emulator: describe, relationship queries, its
change event channel, and a lookup to a record of another object refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.salesforce.cdc import change_event_channel
from connectors.salesforce.emulator import create_app

pytestmark = pytest.mark.anyio
V = "/services/data/v66.0"


@pytest.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """An authenticated raw HTTP client on a fresh emulator with demo data."""
    app = create_app(demo=True, long_poll_timeout=0.05)
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


def test_a_custom_objects_channel_drops_the_c() -> None:
    assert change_event_channel("Project_Milestone__c") == "/data/Project_Milestone__ChangeEvent"
    assert change_event_channel("Opportunity") == "/data/OpportunityChangeEvent"


async def test_describe_names_the_lookup_and_the_child_relationship(api: Any) -> None:
    http, _emu = api
    described = (await http.get(f"{V}/sobjects/Project_Milestone__c/describe")).json()
    assert described["custom"] is True and described["keyPrefix"] == "a0M"
    fields = {f["name"]: f for f in described["fields"]}
    lookup = fields["Opportunity__c"]
    assert (lookup["type"], lookup["referenceTo"], lookup["relationshipName"]) == \
        ("reference", ["Opportunity"], "Opportunity__r")
    assert [p["value"] for p in fields["Status__c"]["picklistValues"]] == \
        ["Planned", "In Progress", "Complete", "Billable", "Cancelled"]
    assert fields["QuickBooks_Invoice_Id__c"]["externalId"] is True
    opportunity = (await http.get(f"{V}/sobjects/Opportunity/describe")).json()
    assert {"childSObject": "Project_Milestone__c", "field": "Opportunity__c",
            "relationshipName": "Project_Milestones__r", "cascadeDelete": False} in opportunity["childRelationships"]
    listed = (await http.get(f"{V}/sobjects")).json()["sobjects"]
    assert any(o["name"] == "Project_Milestone__c" and o["custom"] for o in listed)


async def test_queries_follow_the_lookup_both_ways(api: Any) -> None:
    http, _emu = api
    rows = (await _soql(http, "SELECT Name, Amount__c, Opportunity__r.Name, Opportunity__r.Account.Name "
                              "FROM Project_Milestone__c WHERE Status__c = 'Billable' ORDER BY Due_Date__c"))["records"]
    assert [(r["Name"], r["Opportunity__r"]["Account"]["Name"]) for r in rows] == [
        ("Discovery and design", "Acme Corp"), ("Platform build", "Acme Corp")]
    parents = (await _soql(http, "SELECT Name, (SELECT Name FROM Project_Milestones__r ORDER BY Name) "
                                 "FROM Opportunity WHERE Bill_By_Milestone__c = true"))["records"]
    assert [m["Name"] for m in parents[0]["Project_Milestones__r"]["records"]] == [
        "Discovery and design", "Platform build", "Rollout and training"]


async def test_writes_are_checked_and_announced_on_the_objects_channel(api: Any) -> None:
    http, emu = api
    hand = (await http.post("/cometd/66.0", json=[{"channel": "/meta/handshake", "version": "1.0"}])).json()[0]
    channel = "/data/Project_Milestone__ChangeEvent"
    sub = (await http.post("/cometd/66.0", json=[{"channel": "/meta/subscribe", "clientId": hand["clientId"],
                                                  "subscription": channel,
                                                  "ext": {"replay": {channel: -1}}}])).json()
    assert sub[0]["successful"] is True
    wrong = (await http.post("/cometd/66.0", json=[{"channel": "/meta/subscribe", "clientId": hand["clientId"],
                                                    "subscription": "/data/Project_Milestone__cChangeEvent"}])).json()
    assert wrong[0]["successful"] is False
    opportunity = next(o for o in emu.org.records["Opportunity"].values() if o["Bill_By_Milestone__c"])
    account = opportunity["AccountId"]
    bad = await http.post(f"{V}/sobjects/Project_Milestone__c", json={
        "Name": "Go-live", "Opportunity__c": account, "Status__c": "Planned"})
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
    made = await http.post(f"{V}/sobjects/Project_Milestone__c", json={
        "Name": "Go-live", "Opportunity__c": opportunity["Id"], "Amount__c": 500, "Status__c": "Planned"})
    assert made.status_code == 201, made.text
    replies = (await http.post("/cometd/66.0", json=[{"channel": "/meta/connect", "clientId": hand["clientId"],
                                                      "connectionType": "long-polling"}])).json()
    event = replies[0]
    assert event["channel"] == channel
    header = event["data"]["payload"]["ChangeEventHeader"]
    assert (header["entityName"], header["changeType"], header["recordIds"]) == \
        ("Project_Milestone__c", "CREATE", [made.json()["id"]])

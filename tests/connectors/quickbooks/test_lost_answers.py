"""Lost answers: the emulator's switches, and creates that look the record up before sending again."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.quickbooks.creates import SENT_NAMESPACE
from runtime.errors import SpliceError
from runtime.resources import RuntimeResources
from runtime.store import ObjectStore
from tests.support.quickbooks import CLIENT_ID, CLIENT_SECRET, REALM, SEED_REFRESH_TOKEN, connect, run_op
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.anyio
API = f"/v3/company/{REALM}"
HOURS, AMY = "9", "11"


def _invoice(doc_number: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"CustomerRef": {"value": AMY}, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 150,
         "SalesItemLineDetail": {"ItemRef": {"value": HOURS}, "Qty": 1, "UnitPrice": 150}}]}
    if doc_number:
        body["DocNumber"] = doc_number
    return body


def _lost_answers(resources: RuntimeResources, entity: str, outcome: str) -> float | None:
    return resources.metrics.registry.get_sample_value(
        "splice_lost_answers_total", {"connector": "quickbooks", "entity": entity, "outcome": outcome})


def _rows(emulator: Any, entity: str) -> list[dict[str, Any]]:
    return list(emulator.state.emulator.companies[REALM].tables[entity].values())


async def _token(client: httpx.AsyncClient) -> str:
    answer = await client.post("/oauth2/v1/tokens/bearer", auth=(CLIENT_ID, CLIENT_SECRET),
                               data={"grant_type": "refresh_token", "refresh_token": SEED_REFRESH_TOKEN})
    return str(answer.json()["access_token"])


@pytest.fixture
async def http(emulator: Any, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """A raw client of the emulator in process, with a valid access token."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator),
                                 base_url="http://qb.test") as client:
        client.headers.update({"Authorization": f"Bearer {await _token(client)}",
                               "Accept": "application/json"})
        yield client


# ----------------------------------------------------------------- the emulator's switches


async def test_forgotten_request_ids_make_a_repeated_create_a_second_record(
        emulator: Any, http: httpx.AsyncClient) -> None:
    """By default a repeated requestid gets the first answer; forgetting them, the create runs again."""
    params = {"minorversion": "75", "requestid": "same-request"}
    first = await http.post(f"{API}/invoice", params=params, json=_invoice())
    replayed = await http.post(f"{API}/invoice", params=params, json=_invoice())
    assert replayed.json()["Invoice"]["Id"] == first.json()["Invoice"]["Id"]
    assert len(_rows(emulator, "Invoice")) == 1
    switched = await http.post("/_emulator/faults", json={"forget-request-ids": True})
    assert switched.json()["forget_request_ids"] is True
    again = await http.post(f"{API}/invoice", params={**params, "requestid": "other"}, json=_invoice())
    repeated = await http.post(f"{API}/invoice", params={**params, "requestid": "other"}, json=_invoice())
    assert again.status_code == repeated.status_code == 200
    assert again.json()["Invoice"]["Id"] != repeated.json()["Invoice"]["Id"]
    assert len(_rows(emulator, "Invoice")) == 3


async def test_a_lost_answer_commits_the_create_then_answers_502(
        emulator: Any, http: httpx.AsyncClient) -> None:
    """Only creates of the named entity lose their answer; the record is made all the same."""
    switched = await http.post("/_emulator/faults", json={
        "lose-answers": 1, "lose-answers-entity": "Invoice", "lost-answer": "502"})
    assert switched.status_code == 200
    customer = await http.post(f"{API}/customer", json={"DisplayName": "Answered Co"})
    assert customer.status_code == 200
    lost = await http.post(f"{API}/invoice", json=_invoice("LOST-1"))
    assert lost.status_code == 502 and "Bad Gateway" in lost.text
    assert [i["DocNumber"] for i in _rows(emulator, "Invoice")] == ["LOST-1"]
    answered = await http.post(f"{API}/invoice", json=_invoice("LOST-2"))
    assert answered.status_code == 200
    assert emulator.state.emulator.faults.lose_answers == 0


async def test_lost_answers_take_no_update(emulator: Any, http: httpx.AsyncClient) -> None:
    """An update is answered; the switch waits for the next create."""
    made = (await http.post(f"{API}/invoice", json=_invoice("UPD-1"))).json()["Invoice"]
    await http.post("/_emulator/faults", json={"lose_answers": 1, "lost_answer": "504"})
    updated = await http.post(f"{API}/invoice", json={"Id": made["Id"], "SyncToken": made["SyncToken"],
                                                      "sparse": True, "PrivateNote": "edited"})
    assert updated.status_code == 200
    lost = await http.post(f"{API}/customer", json={"DisplayName": "Timed Out Co"})
    assert lost.status_code == 504
    assert "Timed Out Co" in [c["DisplayName"] for c in _rows(emulator, "Customer")]


async def test_a_reset_answer_drops_the_connection_in_process(emulator: Any, http: httpx.AsyncClient) -> None:
    """In process the client sees the RemoteProtocolError of a dropped connection."""
    await http.post("/_emulator/faults", json={"lose_answers": 1, "lost_answer": "reset"})
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post(f"{API}/invoice", json=_invoice("RESET-1"))
    assert [i["DocNumber"] for i in _rows(emulator, "Invoice")] == ["RESET-1"]


def test_a_reset_answer_drops_the_connection_over_a_socket() -> None:
    """Served by uvicorn the connection closes mid-answer: the same error over a real socket."""
    from connectors.quickbooks.emulator import create_app

    app = create_app(refresh_token=SEED_REFRESH_TOKEN)
    app.state.emulator.faults.update({"lose_answers": 1, "lost_answer": "reset"})
    with serve_in_thread(app, lifespan="off") as base, httpx.Client(base_url=base) as client:
        token = client.post("/oauth2/v1/tokens/bearer", auth=(CLIENT_ID, CLIENT_SECRET),
                            data={"grant_type": "refresh_token",
                                  "refresh_token": SEED_REFRESH_TOKEN}).json()["access_token"]
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(f"{API}/invoice", json=_invoice("RESET-2"),
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    assert [i["DocNumber"] for i in _rows(app, "Invoice")] == ["RESET-2"]


async def test_the_control_api_refuses_an_unknown_way_to_lose_an_answer(http: httpx.AsyncClient) -> None:
    """A typo in a switch is a 400, not a switch that never fires."""
    bad = await http.post("/_emulator/faults", json={"lost_answer": "timeout-ish"})
    assert bad.status_code == 400 and "lost_answer" in bad.json()["error"]
    not_bool = await http.post("/_emulator/faults", json={"forget_request_ids": "false"})
    assert not_bool.status_code == 400


# ----------------------------------------------------------------- the connector's creates


@pytest.mark.parametrize("lost_answer", ["502", "504", "reset"])
async def test_a_create_whose_answer_is_lost_is_found_not_made_twice(
        emulator: Any, store: ObjectStore, caplog: pytest.LogCaptureFixture, lost_answer: str) -> None:
    """Requestids forgotten, the answer lost: the invoice is looked up by DocNumber and returned."""
    emulator.state.emulator.faults.update({"forget_request_ids": True, "lose_answers": 1,
                                           "lost_answer": lost_answer})
    resources = RuntimeResources()
    async with connect(emulator, store, resources=resources, **{"retry-delay": 0.01}) as qb:
        with caplog.at_level(logging.INFO):
            invoice = await run_op("create", qb, store, entity="Invoice", record=_invoice("SF-LOST-1"),
                                   idempotency_key="opp-lost-1")
    [made] = _rows(emulator, "Invoice")
    assert invoice["Id"] == made["Id"] and invoice["DocNumber"] == "SF-LOST-1"
    assert any(r.levelno == logging.WARNING and "Invoice DocNumber SF-LOST-1" in r.getMessage()
               and "answer was lost" in r.getMessage() for r in caplog.records)
    assert _lost_answers(resources, "Invoice", "found") == 1.0
    assert _lost_answers(resources, "Invoice", "resent") is None


async def test_a_lost_customer_answer_is_found_by_its_display_name(
        emulator: Any, store: ObjectStore, caplog: pytest.LogCaptureFixture) -> None:
    """find-or-create's create is looked up by the unique name before it is sent again."""
    emulator.state.emulator.faults.update({"forget_request_ids": True, "lose_answers": 1})
    async with connect(emulator, store, **{"retry-delay": 0.01}) as qb:
        with caplog.at_level(logging.INFO):
            customer = await run_op("find-or-create", qb, store, entity="Customer",
                                    record={"DisplayName": "Lost & Found Ltd"},
                                    idempotency_key="acct-lost")
    assert [c["Id"] for c in _rows(emulator, "Customer") if c["DisplayName"] == "Lost & Found Ltd"] \
        == [customer["Id"]]
    assert any("Customer DisplayName Lost & Found Ltd" in r.getMessage() and "answer was lost"
               in r.getMessage() for r in caplog.records)


async def test_not_found_after_a_lost_answer_the_create_is_sent_again(
        emulator: Any, store: ObjectStore, caplog: pytest.LogCaptureFixture) -> None:
    """A 502 before anything was made (the gateway's own): the lookup finds nothing, one record results."""
    emulator.state.emulator.faults.update({"fail_next": 1, "fail_status": 502,
                                           "forget_request_ids": True})
    resources = RuntimeResources()
    async with connect(emulator, store, resources=resources, **{"retry-delay": 0.01}) as qb:
        with caplog.at_level(logging.INFO):
            invoice = await run_op("create", qb, store, entity="Invoice", record=_invoice("SF-RESEND"),
                                   idempotency_key="opp-resend")
    assert [i["Id"] for i in _rows(emulator, "Invoice")] == [invoice["Id"]]
    assert _lost_answers(resources, "Invoice", "resent") == 1.0
    assert any("SF-RESEND not found after a lost answer" in r.getMessage() for r in caplog.records)


class _QueriesDown(httpx.AsyncBaseTransport):
    """The emulator, with every query failing to connect while ``down`` is set."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.down = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down and request.url.path.endswith("/query"):
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


async def test_a_later_attempt_looks_up_what_an_earlier_one_sent(
        emulator: Any, store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The step failed after a lost answer (its lookup failed too): the retry finds the invoice."""
    from tests.support import quickbooks as support

    transport = _QueriesDown(emulator)
    monkeypatch.setattr(support.httpx, "ASGITransport", lambda app: transport)
    emulator.state.emulator.faults.update({"forget_request_ids": True, "lose_answers": 1})
    async with connect(emulator, store, **{"retry-delay": 0.01}) as qb:
        transport.down = True
        with pytest.raises(SpliceError) as failed:
            await run_op("create", qb, store, entity="Invoice", record=_invoice("SF-LATER"),
                         idempotency_key="opp-later")
        assert failed.value.error_type == "QUICKBOOKS:CONNECTIVITY"
        assert await store.get(SENT_NAMESPACE, f"{REALM}:Invoice:opp-later") is not None
        transport.down = False
        invoice = await run_op("create", qb, store, entity="Invoice", record=_invoice("SF-LATER"),
                               idempotency_key="opp-later")
    assert [i["Id"] for i in _rows(emulator, "Invoice")] == [invoice["Id"]]


async def test_a_refused_create_leaves_no_sent_mark(emulator: Any, store: ObjectStore) -> None:
    """A 4xx made nothing: the next attempt need not look anything up."""
    async with connect(emulator, store) as qb:
        with pytest.raises(SpliceError) as refused:
            await run_op("create", qb, store, entity="Invoice",
                         record={**_invoice("SF-BAD"), "CustomerRef": {"value": "999"}},
                         idempotency_key="opp-bad")
    assert refused.value.error_type == "QUICKBOOKS:INVALID_REFERENCE"
    assert await store.get(SENT_NAMESPACE, f"{REALM}:Invoice:opp-bad") is None

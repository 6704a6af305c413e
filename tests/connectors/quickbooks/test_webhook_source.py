"""quickbooks.webhook: signature, both formats, durable inbox, dedup, fast answer."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.emulator import create_app
from connectors.quickbooks.emulator.webhooks import sign
from connectors.quickbooks.sources import SOURCES
from connectors.quickbooks.webhooks import parse_notifications, verify_signature
from runtime.context import HttpRequest, HttpResponse
from runtime.store import Inbox, ObjectStore
from runtime.testing import typed_call, wait_until
from tests.support.quickbooks import REALM, SEED_REFRESH_TOKEN, FakeSourceContext, connect, run_op

pytestmark = pytest.mark.anyio

run_webhook = typed_call(next(s for s in SOURCES if s.name == "webhook"))

VERIFIER = "emulator-verifier"
PATH = "/webhooks/quickbooks"
PARAMS = {"path": PATH, "poll-interval": "1s", "batch-size": 50}


def _classic(*entities: tuple[str, str, str], realm: str = REALM) -> bytes:
    return json.dumps({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": [
        {"name": name, "id": eid, "operation": op, "lastUpdated": "2026-03-02T14:42:19-0700"}
        for name, eid, op in entities]}}]}).encode()


def _request(body: bytes, signature: str | None = None) -> HttpRequest:
    headers = {"Content-Type": "application/json"}
    if signature is not False:
        headers["Intuit-Signature"] = signature if signature is not None else sign(body, VERIFIER)
    return HttpRequest(method="POST", path=PATH, headers=headers, query={}, body=body)


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    """The exact bytes count: a re-serialised body does not verify."""
    body = _classic(("Customer", "1", "Create"))
    assert verify_signature(body, sign(body, VERIFIER), VERIFIER)
    assert not verify_signature(body + b" ", sign(body, VERIFIER), VERIFIER)
    assert not verify_signature(body, sign(body, "other"), VERIFIER)
    assert not verify_signature(body, "not base64!", VERIFIER)
    assert not verify_signature(body, None, VERIFIER)


def test_both_payload_formats_parse_to_the_same_events() -> None:
    """Classic eventNotifications and the CloudEvents array."""
    classic = parse_notifications(_classic(("Invoice", "130", "Update")))
    cloud = parse_notifications(json.dumps([{
        "specversion": "1.0", "id": "88cd52aa", "source": "intuit.x", "type": "qbo.invoice.updated.v1",
        "time": "2025-09-10T21:31:25Z", "intuitentityid": "130", "intuitaccountid": REALM,
        "data": {}}]).encode())
    for events in (classic, cloud):
        (event,) = events
        assert (event.realm_id, event.entity, event.entity_id, event.operation) == (
            REALM, "Invoice", "130", "Update")
    assert cloud[0].event_id == "ce:88cd52aa"
    with pytest.raises(ValueError):
        parse_notifications(b'{"something": "else"}')


async def _running(ctx: FakeSourceContext, params: dict[str, Any], body: Any) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_webhook, ctx, params)
        await wait_until(lambda: PATH in ctx.routes)
        await body(ctx.routes[PATH])
        ctx.stop()


async def test_bad_signature_is_401_and_nothing_is_stored(qb: QuickBooksClient, store: ObjectStore) -> None:
    """Unsigned or wrongly signed deliveries are refused with a JSON body."""
    ctx = FakeSourceContext(qb, store)
    answers: list[HttpResponse] = []

    async def body(endpoint: Any) -> None:
        answers.append(await endpoint(_request(_classic(("Customer", "1", "Create")), "AAAA")))
        answers.append(await endpoint(_request(_classic(("Customer", "1", "Create")), False)))

    await _running(ctx, PARAMS, body)
    assert [a.status for a in answers] == [401, 401]
    assert answers[0].body["error"]["type"] == "QUICKBOOKS_WEBHOOK:UNAUTHORIZED"
    assert "intuit-signature" in answers[0].body["error"]["message"]
    assert await Inbox(store, "quickbooks-webhook:qb-flow").count() == 0
    assert ctx.events == []


async def test_answered_before_the_flow_runs_and_duplicates_handled_once(
        qb: QuickBooksClient, store: ObjectStore) -> None:
    """200 comes while the flow is still blocked; a redelivery is recognised."""
    gate = anyio.Event()
    ctx = FakeSourceContext(qb, store, gate=gate)
    payload = _classic(("Customer", "11", "Update"), ("Invoice", "130", "Create"))
    answers: list[HttpResponse] = []

    async def body(endpoint: Any) -> None:
        answers.append(await endpoint(_request(payload)))
        assert ctx.events == []  # the flow has not run: the answer did not wait for it
        answers.append(await endpoint(_request(payload)))  # Intuit redelivers
        gate.set()
        await wait_until(lambda: len(ctx.events) == 2)

    await _running(ctx, PARAMS, body)
    assert [(a.status, a.body["accepted"]) for a in answers] == [(200, 2), (200, 0)]
    assert [(e.attributes["entity"], e.attributes["operation"]) for e in ctx.events] == [
        ("Customer", "Update"), ("Invoice", "Create")]
    assert await Inbox(store, "quickbooks-webhook:qb-flow").count() == 0


async def test_events_of_other_realms_are_ignored(qb: QuickBooksClient, store: ObjectStore) -> None:
    """Deliveries are per app, not per company: only our realm's events reach the flow."""
    ctx = FakeSourceContext(qb, store)

    async def body(endpoint: Any) -> None:
        answer = await endpoint(_request(_classic(("Customer", "1", "Create"), realm="999")))
        assert answer.body == {"accepted": 0, "received": 1}

    await _running(ctx, PARAMS, body)
    assert ctx.events == []


async def test_failed_events_stay_in_the_inbox_and_are_retried(qb: QuickBooksClient,
                                                               store: ObjectStore) -> None:
    """An event whose flow did not finish is kept and handed over again."""
    attempts: list[str] = []

    def outcome(event: Any) -> str:
        attempts.append(event.id)
        return "failed" if len(attempts) == 1 else "completed"

    ctx = FakeSourceContext(qb, store, outcome=outcome)

    async def body(endpoint: Any) -> None:
        await endpoint(_request(_classic(("Invoice", "5", "Update"))))
        await wait_until(lambda: len(ctx.events) == 1)

    await _running(ctx, {**PARAMS, "poll-interval": 0.01}, body)
    assert len(attempts) == 2 and attempts[0] == attempts[1]


async def test_fetch_makes_the_entity_the_payload(qb: QuickBooksClient, store: ObjectStore) -> None:
    """With fetch, the flow gets the changed record, not just the notification."""
    ctx = FakeSourceContext(qb, store)

    async def body(endpoint: Any) -> None:
        await endpoint(_request(_classic(("Customer", "11", "Update"))))
        await wait_until(lambda: len(ctx.events) == 1)

    await _running(ctx, {**PARAMS, "fetch": True}, body)
    assert ctx.events[0].payload["DisplayName"] == "Amy's Bird Sanctuary"


@pytest.mark.parametrize("fmt", ["legacy", "cloudevents"])
async def test_emulator_deliveries_reach_the_flow_once(store: ObjectStore, fmt: str) -> None:
    """The emulator signs and posts changes; a duplicated delivery is handled once."""
    ctx_holder: list[FakeSourceContext] = []

    async def deliver(request: httpx.Request) -> httpx.Response:
        endpoint = ctx_holder[0].routes[PATH]
        answer = await endpoint(HttpRequest(method="POST", path=PATH, headers=dict(request.headers),
                                            query={}, body=request.content))
        return httpx.Response(answer.status, json=answer.body)

    app = create_app(refresh_token=SEED_REFRESH_TOKEN, webhook_url=f"http://splice.test{PATH}",
                     webhook_verifier_token=VERIFIER, webhook_format=fmt,
                     webhook_transport=httpx.MockTransport(deliver),
                     faults={"duplicate_webhooks": 1})
    async with connect(app, store) as qb:
        ctx = FakeSourceContext(qb, store)
        ctx_holder.append(ctx)

        async def body(_endpoint: Any) -> None:
            created = await run_op("create", qb, store, entity="Customer",
                                   record={"DisplayName": "Hooked Inc"}, idempotency_key="hook-1")
            assert await app.state.emulator.webhooks.flush() == 2  # sent twice
            await wait_until(lambda: len(ctx.events) == 1)
            assert ctx.events[0].attributes["entityId"] == created["Id"]

        await _running(ctx, PARAMS, body)
    assert ctx.events[0].attributes["operation"] == "Create"
    assert ctx.events[0].attributes["format"] == ("classic" if fmt == "legacy" else "cloudevents")


async def test_an_event_repeated_in_another_delivery_is_handled_once(
        qb: QuickBooksClient, store: ObjectStore) -> None:
    """Deliveries are stored whole (one write each); events are deduplicated when handled."""
    ctx = FakeSourceContext(qb, store)
    big = _classic(*[("Customer", str(i), "Update") for i in range(500)])
    overlapping = _classic(("Customer", "7", "Update"), ("Invoice", "9", "Create"))

    async def body(endpoint: Any) -> None:
        first = await endpoint(_request(big))
        assert first.body == {"accepted": 500, "received": 500}
        await wait_until(lambda: len(ctx.events) == 500)
        await endpoint(_request(overlapping))
        await wait_until(lambda: len(ctx.events) == 501)

    await _running(ctx, {**PARAMS, "poll-interval": 0.01}, body)
    assert [e.attributes["entityId"] for e in ctx.events[500:]] == ["9"]

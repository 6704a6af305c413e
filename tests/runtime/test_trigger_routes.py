"""A trigger's HTTP route answers only while its trigger runs, and a restarted trigger gets it back.

QuickBooks (like Salesforce) redelivers a webhook only when it was not answered 2xx: a route whose
trigger has failed must say 503, never "accepted", and the restarted trigger must serve it again.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import dsl
from connectors.quickbooks.emulator import create_app as quickbooks_app
from connectors.quickbooks.emulator.webhooks import sign
from runtime.registry import load_registry
from runtime.routes import RouteConflictError, RouteTable
from runtime.server.app import create_app
from runtime.service import SpliceRuntime, open_runtime
from runtime.store import open_store
from runtime.testing import wait_until
from tests.support.flows import ENVIRON, REALM, SEED_REFRESH_TOKEN

pytestmark = pytest.mark.anyio

CONNECTIONS = """\
connections:
  quickbooks:
    connector: quickbooks
    client-id: ${quickbooks.client-id}
    client-secret: ${quickbooks.client-secret}
    realm-id: "${quickbooks.realm-id}"
    refresh-token: ${quickbooks.refresh-token}
    base-url: ${quickbooks.base-url}
    token-url: ${quickbooks.token-url}
    webhook-verifier-token: ${quickbooks.webhook-verifier-token}
"""

PAYMENTS = """\
flow: payments
trigger:
  quickbooks.webhook: { poll-interval: 50ms }
steps:
  - log: "payment #[payload.entityId]"
"""

VERIFIER = ENVIRON["QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN"]
HANDLED = "quickbooks-webhook-handled:payments"


def _delivery(payment_id: str) -> bytes:
    return json.dumps({"eventNotifications": [{"realmId": REALM, "dataChangeEvent": {"entities": [
        {"name": "Payment", "id": payment_id, "operation": "Create",
         "lastUpdated": "2026-04-30T10:00:00.000Z"}]}}]}).encode()


def _event_id(payment_id: str) -> str:
    return f"{REALM}:Payment:{payment_id}:Create:2026-04-30T10:00:00.000Z"


async def _post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/webhooks/quickbooks", content=body, headers={
        "intuit-signature": sign(body, VERIFIER), "content-type": "application/json"})


@asynccontextmanager
async def _runtime(tmp_path: Path, outage: list[bool]) -> AsyncIterator[SpliceRuntime]:
    """The payments flow on a store whose listing fails while ``outage[0]`` is true."""
    (tmp_path / "splice.yaml").write_text(CONNECTIONS)
    (tmp_path / "payments.yaml").write_text(PAYMENTS)
    registry = load_registry()
    project = dsl.load_project(tmp_path, vocabulary=registry, environ=ENVIRON)
    store = open_store("memory://")
    items = store.items

    def flaky_items(*args: Any, **kwargs: Any) -> Any:
        if outage[0]:
            raise OSError("database is locked")
        return items(*args, **kwargs)

    store.items = flaky_items  # type: ignore[method-assign]
    transports = {"quickbooks": httpx.ASGITransport(app=quickbooks_app(refresh_token=SEED_REFRESH_TOKEN))}
    try:
        async with open_runtime(project, registry, store=store, transports=transports) as runtime:
            yield runtime
    finally:
        await store.aclose()


async def test_a_webhook_route_answers_503_until_its_restarted_trigger_serves_it(tmp_path: Path
                                                                                 ) -> None:
    """The webhook trigger fails on a store error after registering its route: meanwhile the route
    answers 503 (JSON, Retry-After) and nothing is accepted; the restarted trigger registers the
    route again (no conflict with its own earlier one) and the next delivery reaches the flow; once
    the trigger stopped, the route answers 503 again."""
    outage = [True]
    async with _runtime(tmp_path, outage) as runtime:
        app = create_app(runtime, drain_timeout=5)
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://splice") as client:
                state = runtime.triggers.all()["payments"]
                await wait_until(lambda: state.failures >= 1, what="the trigger to fail")
                refused = await _post(client, _delivery("501"))
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["type"] == "SERVER:TRIGGER_NOT_RUNNING"
                assert refused.headers["retry-after"] == "5"

                outage[0] = False  # the store answers again; the trigger restarts after its pause

                async def accepted() -> bool:
                    answer = await _post(client, _delivery("502"))
                    return answer.status_code == 200 and answer.json()["accepted"] == 1

                await wait_until(accepted, within=15, interval=0.2,
                                 what="the restarted trigger to serve its route")
                assert state.state == "running" and "RouteConflictError" not in (state.error or "")

                async def handled() -> bool:
                    return await runtime.store.get(HANDLED, _event_id("502")) is not None

                await wait_until(handled, what="the delivery to reach the flow")
                assert await runtime.store.get(HANDLED, _event_id("501")) is None

                runtime.request_stop()
                await wait_until(lambda: state.state == "stopped", what="the trigger to stop")
                after = await _post(client, _delivery("503"))
                assert after.status_code == 503
                assert after.json()["error"]["type"] == "SERVER:TRIGGER_NOT_RUNNING"


async def _ok(request: Any) -> Any:
    raise AssertionError("not called")


def test_a_route_is_replaced_by_its_owner_and_refused_to_another() -> None:
    """The same flow registering its route again replaces it; another flow claiming it conflicts."""
    table = RouteTable()
    table.add("/hook", ["POST"], _ok, owner="a")
    table.suspend_owner("a", "is restarting after an error")
    suspended = table.match("POST", "/hook")[0]
    table.add("/hook", ["POST"], _ok, owner="a")
    route, _, _ = table.match("POST", "/hook")
    assert len(list(table)) == 1 and route is not None and route.endpoint is _ok
    assert suspended is not None and suspended.endpoint is not _ok
    with pytest.raises(RouteConflictError, match="claimed by both 'a' and 'b'"):
        table.add("/hook", ["POST"], _ok, owner="b")

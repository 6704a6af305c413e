"""``splice serve``'s app: listeners answer with the flow's result, errors as JSON, policies first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

import connectors.http.plugin as http_plugin
import dsl
from runtime.context import SourceContext
from runtime.hookspecs import hookimpl
from runtime.registry import load_registry
from runtime.server.app import create_app
from runtime.service import SpliceRuntime, open_runtime
from runtime.spec import SourceSpec
from runtime.store import open_store
from runtime.testing import wait_until
from tests.runtime.conftest import Recorder, TestPlugin

pytestmark = pytest.mark.anyio

ORDERS = """
flow: orders
trigger:
  http.listener: { path: /orders, method: POST }
steps:
  - transform: '{"order": id, "total": $sum(lines.amount)}'
"""

LOOKUP = """
flow: lookup
trigger:
  http.listener: { path: "/api/customers/{id}", method: GET }
steps:
  - transform: '{"id": $attributes.pathParams.id}'
"""

FAILING = """
flow: failing
trigger:
  http.listener: { path: /fail }
steps:
  - test.fail: { type: "DEMO:UPSTREAM_DOWN", retryable: true, message: "try later" }
"""

POLICED = """
connections:
  t: { connector: test, token: s3cr3t-token-value }
settings:
  server:
    policies:
      - client-id: { clients: { partner: partner-s3cret }, paths: ["/api/*"] }
      - rate-limit: { requests: 2, period: 60s, paths: ["/orders"] }
"""


@asynccontextmanager
async def serving(runtime: SpliceRuntime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime, drain_timeout=5)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://splice") as client:
            yield client


async def test_listener_returns_flow_result(start: Any) -> None:
    async with start({"orders.yaml": ORDERS, "lookup.yaml": LOOKUP}) as h:
        async with serving(h.runtime) as client:
            created = await client.post("/orders", json={"id": "A1", "lines": [{"amount": 2.5},
                                                                              {"amount": 4}]})
            found = await client.get("/api/customers/001xx")
            health = await client.get("/health")
            ready = await client.get("/ready")
    assert created.status_code == 200
    assert created.json() == {"order": "A1", "total": 6.5}
    assert found.json() == {"id": "001xx"}
    assert health.json()["status"] == "ok" and health.json()["flows"] == 2
    assert ready.status_code == 200


async def test_bad_requests_get_json_errors(start: Any) -> None:
    async with start({"orders.yaml": ORDERS}) as h:
        async with serving(h.runtime) as client:
            not_json = await client.post("/orders", content=b"{nope",
                                         headers={"content-type": "application/json"})
            missing = await client.get("/nowhere")
            wrong_method = await client.get("/orders")
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "HTTP_LISTENER:BAD_REQUEST"
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "SERVER:NOT_FOUND"
    assert wrong_method.status_code == 405


async def test_failed_execution_answers_with_typed_error(start: Any) -> None:
    async with start({"failing.yaml": FAILING}) as h:
        async with serving(h.runtime) as client:
            response = await client.post("/fail", json={})
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["type"] == "DEMO:UPSTREAM_DOWN"
    assert body["error"]["retryable"] is True
    assert body["correlationId"]


async def test_client_id_and_rate_limit_policies(start: Any) -> None:
    async with start({"orders.yaml": ORDERS, "lookup.yaml": LOOKUP}, connections=POLICED) as h:
        async with serving(h.runtime) as client:
            anonymous = await client.get("/api/customers/1")
            wrong = await client.get("/api/customers/1",
                                     headers={"client_id": "partner", "client_secret": "nope"})
            allowed = await client.get("/api/customers/1", headers={
                "client_id": "partner", "client_secret": "partner-s3cret"})
            orders = [await client.post("/orders", json={"id": i, "lines": []}) for i in range(3)]
            health = await client.get("/health")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "POLICY:UNAUTHORIZED"
    assert wrong.status_code == 401
    assert allowed.status_code == 200
    assert [r.status_code for r in orders] == [200, 200, 429]
    assert orders[2].json()["error"]["type"] == "POLICY:TOO_MANY_REQUESTS"
    assert int(orders[2].headers["retry-after"]) > 0
    assert health.status_code == 200


async def test_empty_configured_keys_never_admit_a_request() -> None:
    """An API key or client secret left empty (an unset property) refuses everyone."""
    from runtime.context import HttpRequest
    from runtime.server.policies import build_policies, check_policies

    policies = build_policies([{"api-key": {"keys": [""], "paths": ["/api/*"]}},
                               {"client-id": {"clients": {"partner": ""}, "paths": ["/partner/*"]}}])

    async def ask(path: str, headers: dict[str, str]) -> int | None:
        refusal = await check_policies(policies, HttpRequest("GET", path, headers, {}, b""))
        return refusal.status if refusal else None

    assert await ask("/api/customers/1", {}) == 401
    assert await ask("/api/customers/1", {"x-api-key": ""}) == 401
    assert await ask("/partner/x", {"client_id": "partner", "client_secret": ""}) == 401
    assert await ask("/elsewhere", {}) is None


RATED_BY_CLIENT = """
connections:
  t: { connector: test, token: s3cr3t-token-value }
settings:
  server:
    policies:
      - rate-limit: { requests: 2, period: 60s, key: client, paths: ["/orders"] }
"""


async def test_an_unchecked_client_id_header_buys_no_fresh_quota(start: Any) -> None:
    """Without a client-id policy to check secrets, a rate limit keyed by client counts per address:
    a caller inventing a new client_id for every request is still held to the limit."""
    async with start({"orders.yaml": ORDERS}, connections=RATED_BY_CLIENT) as h:
        async with serving(h.runtime) as client:
            answers = [await client.post("/orders", json={"id": i, "lines": []},
                                         headers={"client_id": f"made-up-{i}"}) for i in range(10)]
    assert [a.status_code for a in answers] == [200, 200] + [429] * 8


CHECKED_CLIENTS = """
connections:
  t: { connector: test, token: s3cr3t-token-value }
settings:
  server:
    policies:
      - client-id: { clients: { a: a-s3cret, b: b-s3cret }, paths: ["/orders"] }
      - rate-limit: { requests: 2, period: 60s, key: client, paths: ["/orders"] }
"""


async def test_checked_clients_each_get_their_own_quota(start: Any) -> None:
    async with start({"orders.yaml": ORDERS}, connections=CHECKED_CLIENTS) as h:
        async with serving(h.runtime) as client:
            def as_(who: str) -> dict[str, str]:
                return {"client_id": who, "client_secret": f"{who}-s3cret"}

            a = [await client.post("/orders", json={"id": 1, "lines": []}, headers=as_("a"))
                 for _ in range(3)]
            b = [await client.post("/orders", json={"id": 1, "lines": []}, headers=as_("b"))
                 for _ in range(3)]
    assert [r.status_code for r in a] == [200, 200, 429]
    assert [r.status_code for r in b] == [200, 200, 429]



FLAKY = """
flow: flaky
trigger:
  flaky: {}
steps:
  - log: "tick"
"""


class _FlakySource:
    """A ``flaky`` trigger whose source fails while ``broken`` is set (as one does while
    the system it reads is down), and otherwise runs until asked to stop."""

    def __init__(self) -> None:
        self.broken = True
        self.attempts = 0

    @hookimpl
    def splice_sources(self) -> list[SourceSpec]:
        async def run(ctx: SourceContext, params: dict[str, Any]) -> None:
            self.attempts += 1
            if self.broken:
                raise ConnectionError("system down (token s3cr3t-token-value refused)")
            while await ctx.sleep(0.01):
                pass

        return [SourceSpec("flaky", run, needs_connection=False)]


async def test_ready_names_a_failing_trigger_until_it_runs_again(write_project: Any) -> None:
    """A trigger whose source keeps failing makes /ready answer 503, naming the flow, its trigger
    and the error (secrets masked); the listener's trigger is reported running; once the source
    runs again after its restart, /ready is 200."""
    flaky = _FlakySource()
    registry = load_registry([http_plugin, TestPlugin(Recorder()), flaky], load_entry_points=False)
    root = write_project({"orders.yaml": ORDERS, "flaky.yaml": FLAKY})
    project = dsl.load_project(root, vocabulary=registry, environ={})
    store = open_store("memory://")
    try:
        async with open_runtime(project, registry, store=store) as runtime:
            async with serving(runtime) as client:
                await wait_until(lambda: flaky.attempts >= 1, what="the flaky source to fail")
                down = await client.get("/ready")
                assert down.status_code == 503
                body = down.json()
                assert body["status"] == "not ready" and body["store"]["ok"] is True
                flaky_state = body["triggers"]["flaky"]
                assert flaky_state["trigger"] == "flaky" and flaky_state["state"] == "restarting"
                assert flaky_state["failures"] == 1
                assert flaky_state["lastError"] == "ConnectionError: system down (token *** refused)"
                assert body["triggers"]["orders"]["state"] == "running"
                assert body["reasons"] == [
                    "the trigger of flow 'flaky' (flaky) is restarting after "
                    "ConnectionError: system down (token *** refused)"]

                flaky.broken = False  # restarted after its pause (1 s), it runs

                async def ready() -> bool:
                    return (await client.get("/ready")).status_code == 200

                await wait_until(ready, within=20, what="/ready once the source runs again")
                body = (await client.get("/ready")).json()
                assert body["status"] == "ready" and "reasons" not in body
                assert body["triggers"]["flaky"]["state"] == "running"
                assert body["triggers"]["flaky"]["failures"] == 1  # the history stays visible
    finally:
        await store.aclose()


async def test_ready_says_when_the_store_does_not_answer(start: Any, monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """A store that fails or hangs makes /ready a 503 that says so; /health stays a liveness 200."""
    async with start({"orders.yaml": ORDERS}) as h:
        app = create_app(h.runtime, drain_timeout=5)
        app.readiness.store_timeout = 0.2
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://splice") as client:
                assert (await client.get("/ready")).status_code == 200

                async def broken(namespace: str, key: str) -> Any:
                    raise OSError("database is locked")

                monkeypatch.setattr(h.runtime.store, "get", broken)
                failing = await client.get("/ready")
                assert failing.status_code == 503
                assert failing.json()["store"] == {"ok": False, "error": "OSError: database is locked"}
                assert failing.json()["reasons"] == ["the store does not answer: OSError: database is locked"]

                async def hanging(namespace: str, key: str) -> Any:
                    await anyio.sleep_forever()

                monkeypatch.setattr(h.runtime.store, "get", hanging)
                hung = await client.get("/ready")
                assert hung.status_code == 503
                assert hung.json()["reasons"] == ["the store does not answer: no answer within 0.2 s"]
                assert (await client.get("/health")).status_code == 200


DROPBOX = """
flow: dropbox
trigger:
  dropbox: {}
steps:
  - log: "#[payload]"
"""


class _DropboxSource:
    """A ``dropbox`` trigger whose endpoint keeps each delivery in the store before answering, as
    a webhook inbox does."""

    @hookimpl
    def splice_sources(self) -> list[SourceSpec]:
        async def run(ctx: SourceContext, params: dict[str, Any]) -> None:
            from runtime.context import HttpRequest, HttpResponse

            async def endpoint(request: HttpRequest) -> HttpResponse:
                await ctx.store.put("dropbox", "last", request.body.decode())
                return HttpResponse(200, {"kept": True})

            ctx.add_route("/dropbox", ["POST"], endpoint)
            while await ctx.sleep(0.01):
                pass

        return [SourceSpec("dropbox", run, needs_connection=False)]


async def test_an_endpoint_that_cannot_keep_a_delivery_answers_503(write_project: Any,
                                                                    tmp_path: Any) -> None:
    """The store locked by another process: the delivery was not kept, so the sender is told to
    send it again (503 with Retry-After), never a 500 it may not retry."""
    import sqlite3

    registry = load_registry([http_plugin, TestPlugin(Recorder()), _DropboxSource()],
                             load_entry_points=False)
    project = dsl.load_project(write_project({"dropbox.yaml": DROPBOX}), vocabulary=registry,
                               environ={})
    path = tmp_path / "store.db"
    store = open_store(f"sqlite:///{path}", busy_timeout=0.05)
    try:
        async with open_runtime(project, registry, store=store) as runtime:
            async with serving(runtime) as client:
                async def routed() -> bool:
                    return (await client.post("/dropbox", content=b"first")).status_code == 200

                await wait_until(routed, what="the dropbox route")
                other = sqlite3.connect(path, isolation_level=None)
                other.execute("BEGIN EXCLUSIVE")
                try:
                    refused = await client.post("/dropbox", content=b"second")
                finally:
                    other.execute("ROLLBACK")
                    other.close()
                again = await client.post("/dropbox", content=b"second")
    finally:
        await store.aclose()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.json()["error"]["type"] == "STORE:UNAVAILABLE"
    assert again.status_code == 200

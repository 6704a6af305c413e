"""``GET /metrics``: what a runtime counted, in Prometheus' text format, per runtime."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import dsl
from runtime.message import Event
from runtime.metrics import RuntimeMetrics, change_time
from runtime.oauth import AccessToken, OAuth2Auth, StoredTokenSource
from runtime.resources import RuntimeResources
from runtime.server.app import create_app
from runtime.service import SpliceRuntime, open_runtime
from runtime.store import open_store
from runtime.transports import create_http_client
from tests.runtime.conftest import CONNECTIONS
from tests.support.flows import open_integration

pytestmark = pytest.mark.anyio

DEAD_LETTERING = """
flow: charge
steps:
  - test.echo: { value: "#[payload]" }
  - test.fail: { type: "DEMO:DECLINED", message: "card declined" }
on-error:
  - then: dead-letter
"""

ORDERS = """
flow: orders
trigger:
  http.listener: { path: /orders, method: POST }
steps:
  - transform: '{"order": id}'
"""


async def scrape(runtime: SpliceRuntime, *, lifespan: bool = False) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``GET /metrics`` of ``runtime``'s app: sample name and sorted labels -> value."""
    app = create_app(runtime, drain_timeout=5)

    @asynccontextmanager
    async def running() -> AsyncIterator[None]:
        if lifespan:
            async with app.lifespan():
                yield
        else:
            yield

    async with running():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://splice") as client:
            response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def names_matching(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
                   **labels: str) -> list[dict[str, str]]:
    """The label sets of ``name`` samples that have ``labels``."""
    return [dict(found) for (sample, found) in samples
            if sample == name and all(dict(found).get(k) == v for k, v in labels.items())]


async def test_a_flow_run_against_both_emulators_shows_in_metrics() -> None:
    async with open_integration() as it:
        account = it.account("Metrics Ltd", BillingCity="Bern")
        product = it.product("Consulting Hours", 150, Family="Services")
        opp = it.opportunity(account, [{"product": product, "Quantity": 2, "UnitPrice": 150}])
        record = it.record("Opportunity", opp)
        outcome = await it.run("opportunity-to-invoice", record,
                               {"systemModstamp": "2026-03-31T10:00:00.000+0000"})
        assert outcome.status == "completed", outcome.error
        samples = await scrape(it.runtime)
    flow = "opportunity-to-invoice"
    assert value(samples, "splice_executions_total", flow=flow, outcome="completed") == 1.0
    assert value(samples, "splice_execution_duration_seconds_count", flow=flow) == 1.0
    assert (value(samples, "splice_execution_duration_seconds_sum", flow=flow) or 0.0) > 0.0
    kinds = {found["step_kind"] for found in names_matching(
        samples, "splice_step_duration_seconds_count", flow=flow)}
    assert {"transform", "quickbooks.create"} <= kinds, kinds
    posts = [found for found in names_matching(samples, "splice_connector_requests_total",
                                               connector="quickbooks", method="POST")]
    assert posts and all(re.fullmatch(r"\d{3}", found["status"]) for found in posts)
    # The writes, and the token refresh (a POST too) made in the flow's first QuickBooks step, the
    # read of the company's currency preferences.
    assert {found["operation"] for found in posts} == {
        "quickbooks.query", "quickbooks.match-or-create", "quickbooks.create"}
    assert (value(samples, "splice_connector_requests_total", connector="salesforce",
                  operation="salesforce.query", method="GET", status="200") or 0.0) >= 1.0
    # QuickBooks' per-realm budget: every request took a rate-limit slot, mostly at once.
    assert (value(samples, "splice_rate_limit_wait_seconds_count", connector="quickbooks")
            or 0.0) >= 1.0
    # The change was made at 10:00 on 31 March; it was handled now, so it is months old.
    lag = value(samples, "splice_trigger_lag_seconds", flow=flow)
    assert lag is not None and lag > 86_400
    assert value(samples, "splice_token_refresh_failures_total", connector="quickbooks") is None


async def test_dead_letters_outcomes_and_store_latency(registry: Any, write_project: Any) -> None:
    root = write_project({"charge.yaml": DEAD_LETTERING},
                         connections=CONNECTIONS + 'settings: { store: "memory://" }\n')
    project = dsl.load_project(root, vocabulary=registry, environ={})
    async with open_runtime(project, registry) as runtime:  # the runtime opens (and times) its store
        for _ in range(2):
            outcome = await runtime.engine.run("charge", Event(payload={"card": "4242"}))
            assert outcome.status == "dead-lettered"
        samples = await scrape(runtime)
    assert value(samples, "splice_store_operation_duration_seconds_count", operation="put") == 2.0
    assert value(samples, "splice_executions_total", flow="charge", outcome="dead-lettered") == 2.0
    assert value(samples, "splice_dead_letters_total", flow="charge") == 2.0
    assert value(samples, "splice_step_duration_seconds_count", flow="charge",
                 step_kind="test.fail") == 2.0
    assert value(samples, "splice_step_duration_seconds_count", flow="charge",
                 step_kind="test.echo") == 2.0


async def test_trigger_state_is_exposed_while_serving(start: Any) -> None:
    async with start({"orders.yaml": ORDERS}) as h:
        samples = await scrape(h.runtime, lifespan=True)
    assert value(samples, "splice_trigger_running", flow="orders", trigger="http.listener",
                 state="running") == 1.0
    assert value(samples, "splice_trigger_failures", flow="orders", trigger="http.listener") == 0.0


async def test_two_runtimes_count_apart(start: Any) -> None:
    async with start({"charge.yaml": DEAD_LETTERING}) as first, \
            start({"orders.yaml": ORDERS}) as second:
        await first.runtime.engine.run("charge", Event(payload={}))
        assert first.runtime.resources.metrics is not second.runtime.resources.metrics
        other = await scrape(second.runtime)
    assert value(other, "splice_executions_total", flow="charge", outcome="dead-lettered") is None


async def test_token_failures_are_counted_until_a_token_is_had_again() -> None:
    metrics = RuntimeResources().metrics
    store = open_store("memory://")
    calls = {"n": 0}

    async def fetch(_stored: AccessToken | None) -> AccessToken:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("invalid_grant")
        return AccessToken("fresh-token", expires_at=4_102_444_800.0)

    source = StoredTokenSource(store, "demo", fetch)
    client = create_http_client(
        "demo", base_url="http://demo.test", auth=OAuth2Auth(source), metrics=metrics, retry=None,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})))
    async with client:
        with pytest.raises(RuntimeError, match="invalid_grant"):
            await client.get("/x")
        assert metrics.auth_errors["demo"] == "RuntimeError: invalid_grant"
        assert (await client.get("/x")).status_code == 200
    await store.aclose()
    assert metrics.auth_errors["demo"] is None
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(metrics.exposition().decode())
               for s in f.samples}
    assert value(samples, "splice_token_refresh_failures_total", connector="demo") == 1.0
    assert value(samples, "splice_connector_requests_total", connector="demo", operation="none",
                 method="GET", status="200") == 1.0


def test_change_time_reads_each_sources_timestamp() -> None:
    assert change_time({"systemModstamp": "2026-03-31T10:00:00.000+0000"}) == 1774951200.0
    assert change_time({"commitTimestamp": 1774951200000}) == 1774951200.0
    assert change_time({"lastUpdated": "2026-03-31T03:00:00-07:00"}) == 1774951200.0
    assert change_time({"source": "poll"}) is None
    assert change_time({"lastUpdated": "yesterday"}) is None


def test_failure_rate_counts_a_window() -> None:
    now = [1000.0]
    metrics = RuntimeMetrics(clock=lambda: now[0])
    outcome = type("O", (), {"status": "failed"})()
    ok = type("O", (), {"status": "completed"})()
    message: Any = type("M", (), {"attributes": {}})()
    metrics.execution_finished("f", message, outcome, 0.1)  # type: ignore[arg-type]
    now[0] = 2000.0
    metrics.execution_finished("f", message, ok, 0.1)  # type: ignore[arg-type]
    metrics.execution_finished("f", message, outcome, 0.1)  # type: ignore[arg-type]
    assert metrics.failure_rate("f", 600) == (1, 2)
    assert metrics.failure_rate("f", 3600) == (2, 3)


async def test_the_metered_store_writes_a_batch_as_its_backend_does(tmp_path: Path) -> None:
    """``put_many`` through the metered store is the backend's one transaction (the execution
    history's writer depends on it), not one write per entry."""
    from runtime.metrics import MeteredStore
    from runtime.store.sqlite import SQLiteStore

    calls: list[str] = []

    class Counting(SQLiteStore):
        async def put(self, namespace: str, key: str, value: Any, *, ttl: float | None = None) -> None:
            calls.append("put")
            await super().put(namespace, key, value, ttl=ttl)

        async def put_many(self, entries: Any, *, ttl: float | None = None) -> None:
            calls.append("put_many")
            await super().put_many(entries, ttl=ttl)

    metrics = RuntimeMetrics()
    store = MeteredStore.wrap(Counting(tmp_path / "s.db"), metrics)
    await store.put_many([("ns", f"k{n}", n) for n in range(3)], ttl=60)
    assert calls == ["put_many"]
    assert [value async for _, value in store.items("ns")] == [0, 1, 2]
    await store.aclose()
    assert b'splice_store_operation_duration_seconds_count{operation="put_many"} 1.0' \
        in metrics.exposition()

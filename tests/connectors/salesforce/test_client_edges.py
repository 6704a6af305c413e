"""Answers the emulator never gives, through ``httpx.MockTransport``: upsert 204 (older API
versions), timeouts, non-JSON 5xx bodies, token endpoint outages."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from opentelemetry import trace

from connectors.salesforce.errors import SalesforceError
from connectors.salesforce.plugin import CONNECTOR
from runtime.context import ConnectionContext

pytestmark = pytest.mark.anyio

SETTINGS = {"auth": "client-credentials", "login-url": "https://acme.my.salesforce.com", "client-id": "cid",
            "client-secret": "edge-secret", "retries": 1, "retry-delay": "1ms", "timeout": 1}
TOKEN = {"access_token": "00DRx0000000001!edge-token-value", "instance_url": "https://acme.my.salesforce.com",
         "token_type": "Bearer", "issued_at": "1767225600000", "id": "https://login.salesforce.com/id/00D/005"}


def _context(store: Any, handler: Callable[[httpx.Request], httpx.Response]) -> ConnectionContext:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/services/oauth2/token":
            return httpx.Response(200, json=TOKEN)
        return handler(request)

    return ConnectionContext(name="edge", connector="salesforce", store=store, logger=logging.getLogger("t"),
                             tracer=trace.get_tracer("t"), transport=httpx.MockTransport(route))


async def test_upsert_204_reads_the_id_back(store: Any) -> None:
    """An upsert answered 204 (no body) still yields the record id, created False."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.raw_path.decode()}")
        if request.method == "PATCH":
            assert json.loads(request.content) == {"Name": "Acme"}  # no Id, no external id field
            return httpx.Response(204)
        return httpx.Response(200, json={"attributes": {"type": "Account"}, "Id": "001Rx000000000AIAQ"})

    async with CONNECTOR.connection.connect(dict(SETTINGS), _context(store, handler)) as client:
        result = await client.upsert("Account", "QB_Customer_Id__c", "5/8", {"Name": "Acme", "QB_Customer_Id__c": "5/8"})
    assert result == {"id": "001Rx000000000AIAQ", "success": True, "errors": [], "created": False}
    assert calls == ["PATCH /services/data/v66.0/sobjects/Account/QB_Customer_Id__c/5%2F8",
                     "GET /services/data/v66.0/sobjects/Account/QB_Customer_Id__c/5%2F8?fields=Id"]


async def test_timeouts_and_html_503_are_retryable(store: Any) -> None:
    """A read timeout is SALESFORCE:TIMEOUT and an HTML 503 page SERVER_UNAVAILABLE, both retryable."""
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with CONNECTOR.connection.connect(dict(SETTINGS), _context(store, slow)) as client:
        with pytest.raises(SalesforceError) as timed_out:
            await client.get("Account", "001Rx000000000AIAQ")
    assert timed_out.value.error_type == "SALESFORCE:TIMEOUT" and timed_out.value.retryable

    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>Maintenance</html>")

    async with CONNECTOR.connection.connect(dict(SETTINGS), _context(store, down)) as client:
        with pytest.raises(SalesforceError) as unavailable:
            await client.get("Account", "001Rx000000000AIAQ")
    assert unavailable.value.error_type == "SALESFORCE:SERVER_UNAVAILABLE" and unavailable.value.retryable
    assert "edge-token-value" not in str(unavailable.value)


async def test_token_endpoint_outage_is_retryable_bad_grant_is_not(store: Any) -> None:
    """5xx from the token endpoint may pass; invalid_grant will not."""
    answers = iter([httpx.Response(500, text="oops"),
                    httpx.Response(400, json={"error": "invalid_grant", "error_description": "authentication failure"})])

    def route(request: httpx.Request) -> httpx.Response:
        return next(answers)

    ctx = ConnectionContext(name="edge", connector="salesforce", store=store, logger=logging.getLogger("t"),
                            tracer=trace.get_tracer("t"), transport=httpx.MockTransport(route))
    async with CONNECTOR.connection.connect({**SETTINGS, "retries": 0}, ctx) as client:
        with pytest.raises(SalesforceError) as outage:
            await client.limits()
        assert outage.value.error_type == "SALESFORCE:AUTHENTICATION" and outage.value.retryable
        with pytest.raises(SalesforceError) as refused:
            await client.limits()
    assert not refused.value.retryable and refused.value.details == {"error": "invalid_grant"}
    assert "edge-secret" not in str(refused.value)

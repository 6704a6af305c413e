"""Connector calls replayed from recorded cassettes (``cassettes/test_cassettes/*.yaml``).

CI replays only (pytest-recording's default ``--record-mode=none``): a request the cassette does not
hold fails the test. vcrpy patches the innermost httpx transport, so OAuth, retry, rate-limit and
tracing layers all run during replay. To re-record against the emulator::

    .venv/bin/pytest tests/connectors/salesforce/test_cassettes.py --record-mode=rewrite

and against a real org, with credentials in the environment (see docs/salesforce.md)::

    SPLICE_SF_LIVE=1 SF_AUTH=client-credentials SF_LOGIN_URL=https://acme.my.salesforce.com \\
    SF_CLIENT_ID=... SF_CLIENT_SECRET=... \\
    .venv/bin/pytest tests/connectors/salesforce/test_cassettes.py --record-mode=rewrite
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.composite import collection_write
from connectors.salesforce.emulator import create_app
from connectors.salesforce.operations import OPERATIONS
from connectors.salesforce.plugin import CONNECTOR
from runtime.testing import typed_call

pytestmark = pytest.mark.anyio


CASSETTES = Path(__file__).parent / "cassettes" / "test_cassettes"
REPLAY_SETTINGS = {"auth": "client-credentials", "login-url": "https://acme.my.salesforce.com",
                   "client-id": "cassette-client-id", "client-secret": "cassette-client-secret",
                   "retry-delay": "10ms"}
OPS = {op.name: typed_call(op) for op in OPERATIONS}
NAME = "Splice Cassette Account"
EXTERNAL_ID = "SPLICE-CASSETTE-1"


def _live_settings() -> dict[str, Any] | None:
    """Connection settings for a real org from SF_* variables when SPLICE_SF_LIVE=1."""
    if os.environ.get("SPLICE_SF_LIVE") != "1":
        return None
    env = {"auth": "SF_AUTH", "login-url": "SF_LOGIN_URL", "client-id": "SF_CLIENT_ID",
           "client-secret": "SF_CLIENT_SECRET", "username": "SF_USERNAME", "refresh-token": "SF_REFRESH_TOKEN",
           "api-version": "SF_API_VERSION"}
    settings = {key: os.environ[var] for key, var in env.items() if os.environ.get(var)}
    if os.environ.get("SF_PRIVATE_KEY_FILE"):
        settings["private-key"] = Path(os.environ["SF_PRIVATE_KEY_FILE"]).read_text()
    return settings


@pytest.fixture
async def recorded(store: Any, make_connection_context: Any, record_mode: str,
                   vcr: Any) -> AsyncIterator[SalesforceClient]:
    """A client whose HTTP is served by the cassette (replay) or by the emulator / a live org (record)."""
    live = _live_settings() if record_mode != "none" else None
    ctx = make_connection_context(create_app(page_size=2), store)
    if live is not None:
        ctx.transport = None
    async with CONNECTOR.connection.connect(live or dict(REPLAY_SETTINGS), ctx) as client:
        yield client
    if record_mode == "none":
        assert vcr.play_count > 0 and vcr.all_played, "the cassette was not (fully) replayed"


@pytest.mark.vcr
async def test_account_life_cycle(recorded: SalesforceClient, op_ctx_factory: Any) -> None:
    """Upsert by external id (created, then updated), get, query with a bind, delete."""
    ctx = op_ctx_factory(recorded)
    params = {"object": "Account", "external-id-field": "QB_Customer_Id__c", "external-id": EXTERNAL_ID,
              "record": {"Name": NAME}}
    created = await OPS["upsert"](ctx, params)
    updated = await OPS["upsert"](ctx, {**params, "record": {"Phone": "555-0100"}})
    assert created["created"] is True and updated["created"] is False and created["id"] == updated["id"]
    record = await OPS["get"](ctx, {"object": "Account", "id": created["id"], "fields": ["Name", "Phone"]})
    assert record["Phone"] == "555-0100"
    stream = await OPS["query"](ctx, {"query": "SELECT Id, Name FROM Account WHERE QB_Customer_Id__c = :ext",
                                      "binds": {"ext": EXTERNAL_ID}})
    assert [r["Id"] async for r in stream] == [created["id"]]
    await OPS["delete"](ctx, {"object": "Account", "id": created["id"]})


@pytest.mark.vcr
async def test_collections_and_paged_query(recorded: SalesforceClient, op_ctx_factory: Any) -> None:
    """Collections create, a query that pages, a bulk query job, collections delete."""
    ctx = op_ctx_factory(recorded)
    account = await recorded.create("Account", {"Name": NAME})
    results = await collection_write(recorded, "create", [
        {"LastName": f"Cassette {i}", "AccountId": account["id"]} for i in range(3)], sobject="Contact")
    assert all(r["success"] for r in results)
    stream = await OPS["query"](ctx, {"query": "SELECT Id, LastName, Account.Name FROM Contact "
                                                "WHERE AccountId = :account ORDER BY LastName",
                                      "binds": {"account": account["id"]}})
    rows = [r async for r in stream]
    assert [r["LastName"] for r in rows] == ["Cassette 0", "Cassette 1", "Cassette 2"]
    assert rows[0]["Account"]["Name"] == NAME
    bulk = await OPS["bulk-query"](ctx, {"query": "SELECT Id, LastName FROM Contact WHERE AccountId = :account",
                                         "binds": {"account": account["id"]}, "poll-interval": 0.01})
    assert sorted([r["LastName"] async for r in bulk]) == ["Cassette 0", "Cassette 1", "Cassette 2"]
    deleted = await collection_write(recorded, "delete", [r["id"] for r in results])
    assert all(r["success"] for r in deleted)
    await recorded.delete("Account", account["id"])


def test_cassettes_hold_no_secrets() -> None:
    """No token, secret, Authorization header or real instance host was written to a cassette."""
    texts = [p.read_text() for p in CASSETTES.glob("*.yaml")]
    assert texts, "no cassettes recorded"
    for text in texts:
        assert "cassette-client-secret" not in text and "client_secret=" not in text.replace(
            "client_secret=DUMMY", "")
        assert not re.search(r"00D\w{12,15}![\w.-]{20,}", text), "an access token leaked"
        assert "Bearer " not in text and "authorization" not in text.lower()
        hosts = set(re.findall(r"https://([\w.-]+)", text))
        assert hosts <= {"acme.my.salesforce.com", "login.salesforce.com"}, hosts

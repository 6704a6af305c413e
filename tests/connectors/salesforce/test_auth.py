"""The three OAuth flows, the stored token, one re-authentication and one replay on 401, and the
daily limit as its own error."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.salesforce.emulator import create_app
from connectors.salesforce.errors import SalesforceError
from connectors.salesforce.plugin import CONNECTOR
from runtime.oauth import TOKENS_NAMESPACE

from .conftest import gauge_points

pytestmark = pytest.mark.anyio


def _pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


async def test_client_credentials_token_is_stored_and_reused(app: Any, store: Any,
                                                             make_connection_context: Any) -> None:
    """A second connection on the same store uses the stored token: no second login."""
    settings = {"auth": "client-credentials", "login-url": "https://acme.my.salesforce.com",
                "client-id": "cid", "client-secret": "csecret-value"}
    async with CONNECTOR.connection.connect(settings, make_connection_context(app, store)) as first:
        await first.limits()
    stored = [k async for k, _ in store.items(TOKENS_NAMESPACE)]
    assert len(stored) == 1 and "csecret" not in stored[0]
    async with CONNECTOR.connection.connect(settings, make_connection_context(app, store)) as second:
        await second.limits()
        assert second.tokens.refresh_count == 0
    assert len(app.state.emulator.tokens) == 1


async def test_jwt_bearer_flow_signs_rs256(store: Any, make_connection_context: Any) -> None:
    """The emulator verifies the RS256 signature with the app's certificate key."""
    private, public = _pem_pair()
    app = create_app(jwt_public_keys={"jwt-client": public})
    settings = {"auth": "jwt", "login-url": "https://login.salesforce.com", "client-id": "jwt-client",
                "username": "integration@example.com", "private-key": private}
    async with CONNECTOR.connection.connect(settings, make_connection_context(app, store)) as client:
        assert (await client.limits())["DailyApiRequests"]["Max"] > 0
    other, _ = _pem_pair()
    async with CONNECTOR.connection.connect({**settings, "private-key": other},
                               make_connection_context(app, store, name="other")) as client:
        await client.tokens.invalidate()
        await store.delete(TOKENS_NAMESPACE, client.settings.token_key)
        with pytest.raises(SalesforceError) as failed:
            await client.limits()
    assert failed.value.error_type == "SALESFORCE:AUTHENTICATION" and not failed.value.retryable
    assert "BEGIN" not in str(failed.value)


async def test_refresh_token_rotation_is_persisted(store: Any, make_connection_context: Any) -> None:
    """With rotation on, each refresh stores the new refresh token before it is needed again."""
    app = create_app(rotate_refresh_tokens=True)
    emu = app.state.emulator
    emu.refresh_tokens.add("initial-refresh-token")
    settings = {"auth": "refresh-token", "login-url": "https://login.salesforce.com", "client-id": "cid",
                "refresh-token": "initial-refresh-token"}
    async with CONNECTOR.connection.connect(settings, make_connection_context(app, store)) as client:
        await client.limits()
        first = (await client.tokens.stored()).refresh_token  # type: ignore[union-attr]
        assert first and first != "initial-refresh-token"
        emu.expire_tokens()
        await client.limits()  # 401 -> refresh with the rotated token -> replay
        second = (await client.tokens.stored()).refresh_token  # type: ignore[union-attr]
        assert second and second not in (first, "initial-refresh-token")
        assert client.tokens.refresh_count == 2


async def test_expired_session_reauthenticates_once_and_replays(app: Any, client: Any) -> None:
    """One 401 INVALID_SESSION_ID: one new token, the call succeeds."""
    await client.limits()
    app.state.emulator.expire_tokens()
    await client.create("Account", {"Name": "After expiry"})
    assert client.tokens.refresh_count == 2
    assert len(app.state.emulator.org.records["Account"]) == 1


async def test_persistent_401_fails_without_looping(app: Any, client: Any) -> None:
    """Tokens that die at once: three re-authentications (each replay refused), then
    SALESFORCE:INVALID_SESSION."""
    app.state.emulator.faults.update({"token_lifetime": -1})
    with pytest.raises(SalesforceError) as failed:
        await client.limits()
    assert failed.value.error_type == "SALESFORCE:INVALID_SESSION" and not failed.value.retryable
    assert client.tokens.refresh_count == 4  # the first login and three refreshes


async def test_daily_limit_is_its_own_error_and_usage_is_reported(app: Any, client: Any,
                                                                   metric_reader: Any) -> None:
    """Sforce-Limit-Info feeds status() and the gauge; 403 REQUEST_LIMIT_EXCEEDED is not an auth error."""
    faults = app.state.emulator.faults
    faults.update({"daily_limit": 1000, "api_used": 990})
    status = await client.status()  # no call made yet: status asks /limits once
    assert status["api_usage"] == {"used": 991, "max": 1000, "remaining": 9}
    assert (await client.status())["api_usage"]["used"] == 991  # answered from the last header
    observed = [value for _, connection, value in gauge_points(metric_reader, "splice.salesforce.api_requests.used")
                if connection == "sf"]
    assert observed == [991]
    faults.update({"api_used": 1000})
    with pytest.raises(SalesforceError) as refused:
        await client.limits()
    assert refused.value.error_type == "SALESFORCE:REQUEST_LIMIT_EXCEEDED"
    assert refused.value.status == 403 and refused.value.retry_after


async def test_settings_are_validated_all_at_once(app: Any, store: Any, make_connection_context: Any) -> None:
    """Every missing setting is named in one error."""
    from runtime.errors import ConnectionConfigError

    with pytest.raises(ConnectionConfigError) as bad:
        async with CONNECTOR.connection.connect({"auth": "jwt"}, make_connection_context(app, store)):
            pass
    assert len(bad.value.details["problems"]) == 3

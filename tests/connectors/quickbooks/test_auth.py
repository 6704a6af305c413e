"""OAuth with refresh-token rotation: persisted before use, single flight, invalid_grant handled."""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
import pytest

from connectors.quickbooks.auth import ALERTS_NAMESPACE, RefreshTokenFetcher
from connectors.quickbooks.config import QuickBooksSettings, token_key
from runtime.errors import SpliceError
from runtime.oauth import TOKENS_NAMESPACE, AccessToken
from runtime.store import ObjectStore, open_store
from tests.support.quickbooks import (
    CLIENT_ID,
    CLIENT_SECRET,
    REALM,
    SEED_REFRESH_TOKEN,
    connect,
    typed_settings,
)

pytestmark = pytest.mark.anyio


async def _stored(store: ObjectStore) -> AccessToken:
    data = await store.get(TOKENS_NAMESPACE, token_key(REALM))
    assert data is not None
    return AccessToken.from_dict(data)


async def test_first_call_refreshes_and_stores_the_rotated_refresh_token(emulator: Any,
                                                                         store: ObjectStore) -> None:
    """The seed refresh token is spent; the new one is in the store and is the only valid one."""
    async with connect(emulator, store) as qb:
        await qb.read("Customer", "11")
    authority = emulator.state.emulator.authority
    stored = await _stored(store)
    assert authority.valid_refresh_tokens(REALM) == [stored.refresh_token]
    assert stored.refresh_token != SEED_REFRESH_TOKEN
    assert stored.expires_at is not None and stored.expires_at > time.time() + 3000
    assert stored.extra["refresh_token_hard_expires_at"] > time.time() + 4 * 365 * 86400


async def test_twenty_parallel_flows_refresh_once_and_keep_one_valid_token(
        emulator: Any, tmp_path: Any) -> None:
    """20 connections (own token caches, one shared store) call at once: one refresh happens."""
    url = f"sqlite:///{tmp_path}/store.db"
    stores = [open_store(url) for _ in range(4)]  # four "processes" sharing one SQLite file
    results: list[str] = []
    try:
        async def flow(i: int) -> None:
            async with connect(emulator, stores[i % 4]) as qb:
                results.append((await qb.read("Customer", "11"))["Id"])

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(flow, i)
        authority = emulator.state.emulator.authority
        assert results == ["11"] * 20
        assert authority.refresh_counts[REALM] == 1
        stored = await _stored(stores[0])
        assert authority.valid_refresh_tokens(REALM) == [stored.refresh_token]
    finally:
        for s in stores:
            await s.aclose()


async def test_expired_access_token_is_refreshed_and_the_call_replayed(emulator: Any,
                                                                      store: ObjectStore) -> None:
    """A 401 (3200) after the token expired server-side costs one refresh, not a failure."""
    async with connect(emulator, store) as qb:
        await qb.read("Customer", "11")
        emulator.state.emulator.faults.update({"expire_tokens": True})
        assert (await qb.read("Customer", "12"))["Id"] == "12"
        assert qb.tokens.refresh_count == 2
    assert emulator.state.emulator.authority.refresh_counts[REALM] == 2


async def _fetcher(emulator: Any, store: ObjectStore, **overrides: Any) -> tuple[RefreshTokenFetcher, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator))
    return RefreshTokenFetcher(QuickBooksSettings.from_mapping(typed_settings(**overrides)), http,
                               store), http


async def test_invalid_grant_rereads_the_store_where_a_peer_put_a_newer_token(
        emulator: Any, store: ObjectStore) -> None:
    """Our refresh token was rotated away by another process: use the one it stored."""
    authority = emulator.state.emulator.authority
    grant = authority.grant({"grant_type": "refresh_token", "refresh_token": SEED_REFRESH_TOKEN})
    peer = AccessToken("peer-access-expired", expires_at=time.time() - 10,
                       extra={"refresh_token": grant["refresh_token"]})
    await store.put(TOKENS_NAMESPACE, token_key(REALM), peer.to_dict())
    fetcher, http = await _fetcher(emulator, store)
    async with http:
        stale = AccessToken("old-access", expires_at=0, extra={"refresh_token": SEED_REFRESH_TOKEN})
        fresh = await fetcher(stale)
    assert fresh.refresh_token in authority.valid_refresh_tokens(REALM)
    assert await store.get(ALERTS_NAMESPACE, REALM) is None


async def test_invalid_grant_everywhere_raises_reconnect_required_and_alerts(
        emulator: Any, store: ObjectStore) -> None:
    """No valid refresh token anywhere: a clear, non-retryable error and a stored alert."""
    fetcher, http = await _fetcher(emulator, store, **{"refresh-token": "RT-revoked"})
    async with http:
        with pytest.raises(SpliceError) as info:
            await fetcher(None)
    assert info.value.error_type == "QUICKBOOKS:RECONNECT_REQUIRED"
    assert not info.value.retryable
    assert "RT-revoked" not in str(info.value)
    alert = await store.get(ALERTS_NAMESPACE, REALM)
    assert alert["reconnectRequired"] is True


async def test_reconnect_required_surfaces_through_a_call_and_status(emulator: Any,
                                                                    store: ObjectStore) -> None:
    """An operation sees the typed error; ``status()`` shows the alert."""
    async with connect(emulator, store, **{"refresh-token": "RT-revoked"}) as qb:
        with pytest.raises(SpliceError) as info:
            await qb.read("Customer", "11")
        status = await qb.status()
    assert info.value.error_type == "QUICKBOOKS:RECONNECT_REQUIRED"
    assert status["realmId"] == REALM
    assert "invalid_grant" in status["reconnectRequired"]


async def test_wrong_client_secret_is_an_authentication_error(emulator: Any, store: ObjectStore) -> None:
    """invalid_client is not a reconnect: the app's credentials are wrong."""
    fetcher, http = await _fetcher(emulator, store, **{"client-secret": "wrong-secret"})
    async with http:
        with pytest.raises(SpliceError) as info:
            await fetcher(None)
    assert info.value.error_type == "QUICKBOOKS:AUTHENTICATION"
    assert CLIENT_SECRET not in str(info.value) and CLIENT_ID

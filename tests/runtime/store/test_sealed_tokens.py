"""OAuth tokens at rest: sealed with the secure key on SQLite and PostgreSQL, plaintext without one."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet

from runtime.oauth import TOKENS_NAMESPACE, AccessToken, StoredTokenSource
from runtime.sealing import SealedSecretError, SecretSealer, sealer_from_environ
from tests.runtime.store.conftest import POSTGRES_URL, Backend

pytestmark = pytest.mark.anyio

KEY = Fernet.generate_key().decode("ascii")
ACCOUNT = "quickbooks:9130357766900000"


def _token(n: int) -> AccessToken:
    return AccessToken(f"at-canary-{n}-QmFzZTY0", expires_at=4_000_000_000.0 + n,
                       extra={"refresh_token": f"rt-canary-{n}-c2VjcmV0", "realmId": "9130357766900000"})


class _Fetcher:
    """A token endpoint that rotates the refresh token on every call."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, current: AccessToken | None) -> AccessToken:
        self.calls += 1
        return _token(100 + self.calls)


async def _raw_rows(backend: Backend) -> bytes:
    """Everything the backend holds on disk / in its table, as bytes to search."""
    if backend.name == "sqlite":
        path = Path(urlsplit(backend.url).path)
        return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))
    import asyncpg

    schema = parse_qs(urlsplit(backend.url).query)["schema"][0]
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        rows = await conn.fetch(f'SELECT t::text AS row FROM "{schema}".kv t')
    finally:
        await conn.close()
    return "\n".join(r["row"] for r in rows).encode("utf-8")


async def test_with_a_key_no_token_text_is_stored_and_tokens_refresh_and_read_back(
        backend: Backend) -> None:
    """Sealed rows hide the tokens; a refresh rotates them; a restarted process reads them back."""
    sealer = SecretSealer(KEY)
    store = backend.open()
    await StoredTokenSource(store, ACCOUNT, sealer=sealer).seed(_token(1))
    fetch = _Fetcher()
    source = StoredTokenSource(store, ACCOUNT, fetch, sealer=sealer)
    refreshed = await source.refresh(_token(1))
    assert refreshed.value == "at-canary-101-QmFzZTY0" and fetch.calls == 1
    await store.aclose()
    raw = await _raw_rows(backend)
    assert b"oauth-tokens" in raw  # the row is there...
    for secret in (b"at-canary-1-", b"rt-canary-1-", b"at-canary-101", b"rt-canary-101", b"QmFzZTY0",
                   b"c2VjcmV0"):
        assert secret not in raw  # ...but none of the token text
    restarted = StoredTokenSource(backend.open(), ACCOUNT, _Fetcher(),
                                  sealer=sealer_from_environ({"SPLICE_SECURE_KEY": KEY}))
    again = await restarted.token()
    assert again.value == "at-canary-101-QmFzZTY0"
    assert again.refresh_token == "rt-canary-101-c2VjcmV0"


async def test_a_wrong_key_says_to_authorise_again(backend: Backend) -> None:
    """Another key (or none) gives a typed, clear error naming the way out, not a traceback."""
    store = backend.open()
    await StoredTokenSource(store, ACCOUNT, sealer=SecretSealer(KEY)).seed(_token(2))
    wrong = StoredTokenSource(store, ACCOUNT, _Fetcher(), sealer=SecretSealer("another passphrase"))
    with pytest.raises(SealedSecretError) as info:
        await wrong.token()
    assert info.value.error_type == "OAUTH:TOKENS_UNREADABLE" and not info.value.retryable
    assert "SPLICE_SECURE_KEY" in info.value.message and "authorise the connection again" in info.value.message
    assert "canary" not in str(info.value)
    keyless = StoredTokenSource(store, ACCOUNT, _Fetcher(), sealer=None)
    with pytest.raises(SealedSecretError, match="SPLICE_SECURE_KEY is not set"):
        await keyless.stored()
    # Authorising again stores tokens anew, under the key now configured.
    await StoredTokenSource(store, ACCOUNT, sealer=SecretSealer("another passphrase")).seed(_token(3))
    assert (await wrong.stored()) == _token(3)


async def test_without_a_key_tokens_stay_plaintext_with_a_warning_once(
        backend: Backend, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """No key configured: the row reads as before, and the process says once that it is plaintext."""
    import runtime.sealing

    monkeypatch.delenv("SPLICE_SECURE_KEY", raising=False)
    monkeypatch.setattr(runtime.sealing, "_warned", set())
    store = backend.open()
    source = StoredTokenSource(store, ACCOUNT, _Fetcher())
    assert source.sealer is None
    with caplog.at_level(logging.WARNING, logger="splice.oauth"):
        await source.seed(_token(4))
        await source.refresh(_token(4))
    assert (await store.get(TOKENS_NAMESPACE, ACCOUNT))["value"] == "at-canary-101-QmFzZTY0"
    warnings = [r.getMessage() for r in caplog.records if "plaintext" in r.getMessage()]
    assert len(warnings) == 1 and "SPLICE_SECURE_KEY is not set" in warnings[0]


async def test_a_plaintext_row_from_before_reads_and_is_sealed(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting a key later: the old row still works, and is rewritten sealed on first read."""
    store = backend.open()
    await store.put(TOKENS_NAMESPACE, ACCOUNT, _token(5).to_dict())
    monkeypatch.setenv("SPLICE_SECURE_KEY", "a passphrase for the secure properties")
    source = StoredTokenSource(store, ACCOUNT, _Fetcher())
    assert source.sealer is not None
    assert (await source.token()).value == "at-canary-5-QmFzZTY0"
    row = await store.get(TOKENS_NAMESPACE, ACCOUNT)
    assert set(row) == {"sealed"} and row["sealed"].startswith("v1:")
    assert "canary" not in str(row)
    assert (await StoredTokenSource(store, ACCOUNT).stored()) == _token(5)


async def test_a_sealed_row_opens_only_under_its_own_account(backend: Backend) -> None:
    """The row's place is bound into it: copied under another account's key, it does not open."""
    sealer = SecretSealer(KEY)
    store = backend.open()
    await StoredTokenSource(store, ACCOUNT, sealer=sealer).seed(_token(6))
    await store.put(TOKENS_NAMESPACE, "salesforce:other", await store.get(TOKENS_NAMESPACE, ACCOUNT))
    with pytest.raises(SealedSecretError):
        await StoredTokenSource(store, "salesforce:other", sealer=sealer).stored()

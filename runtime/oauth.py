"""OAuth 2.0 access tokens for connectors: cached, refreshed before expiry and once on 401.

:class:`StoredTokenSource` owns the token life cycle for one account (a Salesforce org, a QuickBooks
realm). Tokens live in the object store, so a restart does not force a new login, and a refresh runs
once at a time: one task per process (an anyio lock) and one process per account (a store lock),
each re-reading the store after it gets the lock because somebody else may have refreshed already.
The connector supplies only ``fetch``: how to get a new token from the current one. A rotated refresh
token returned by ``fetch`` is written to the store *before* the new access token is used, so a crash
right after a refresh never loses the only valid refresh token. With ``SPLICE_SECURE_KEY`` set,
tokens are sealed at rest (:mod:`runtime.sealing`); without it they are stored in plaintext, and a
warning says so once.

:class:`OAuth2Auth` is the ``httpx.Auth`` that puts the token on requests and, on a 401, refreshes and
replays the request (a few times at most, never a loop). In a client of
:func:`runtime.transports.create_http_client` the token is put on each attempt by the innermost
layer, after the wait for a rate-limit slot and after any retry pause: a token taken before a long
wait could expire while the request waits, and the server would answer 401.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio
import httpx

from runtime.redaction import register_secret
from runtime.sealing import (
    SealedSecretError,
    SecretSealer,
    is_sealed,
    sealer_from_environ,
    warn_unsealed_once,
)
from runtime.store.base import ObjectStore

__all__ = ["AUTH_EXTENSION", "AccessToken", "OAuth2Auth", "StoredTokenSource", "TOKENS_NAMESPACE",
           "TokenFetcher", "TokenObserver"]

TOKENS_NAMESPACE = "oauth-tokens"
#: Request extension holding the :class:`OAuth2Auth` that authorizes a request, so that the layer
#: right before the network can put its freshest token on each attempt (:meth:`OAuth2Auth.attach`).
AUTH_EXTENSION = "splice.oauth2"
_USED_TOKEN = "splice.oauth2.token"


@dataclass(slots=True)
class AccessToken:
    """An access token, when it expires (epoch seconds, ``None``: unknown), and what came with it.

    ``extra`` keeps the rest of the token response that the connector needs later: the refresh token,
    Salesforce's ``instance_url``, QuickBooks' refresh-token expiry.
    """

    value: str
    expires_at: float | None = None
    token_type: str = "Bearer"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        register_secret(self.value)
        refresh = self.extra.get("refresh_token")
        if isinstance(refresh, str):
            register_secret(refresh)

    def expires_within(self, seconds: float, *, now: float | None = None) -> bool:
        """Whether the token is expired, or will be within ``seconds``."""
        if self.expires_at is None:
            return False
        return (time.time() if now is None else now) + seconds >= self.expires_at

    @property
    def refresh_token(self) -> str | None:
        """The refresh token that came with this access token, if any."""
        value = self.extra.get("refresh_token")
        return value if isinstance(value, str) else None

    def to_dict(self) -> dict[str, Any]:
        """Stored form."""
        return {"value": self.value, "expires_at": self.expires_at, "token_type": self.token_type,
                "extra": self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccessToken:
        """Rebuild a stored token."""
        return cls(value=data["value"], expires_at=data.get("expires_at"),
                   token_type=data.get("token_type") or "Bearer", extra=dict(data.get("extra") or {}))


#: ``fetch(current)`` returns a new token; ``current`` is the stored one (with its refresh token) or
#: ``None`` before the first login.
TokenFetcher = Callable[[AccessToken | None], Awaitable[AccessToken]]


class StoredTokenSource:
    """Single-flight, store-backed token cache for one account.

    ``fetch`` may be left out where tokens are only read or seeded (a ``connect`` command storing
    the first authorization, a fetcher looking at what a peer stored); :meth:`token` then raises
    once a new token would be needed.

    ``sealer`` seals the stored tokens; by default the one of ``SPLICE_SECURE_KEY`` in the process
    environment (the key secure properties are decrypted with), and none when it is unset. A stored
    row that does not open raises :class:`runtime.sealing.SealedSecretError`
    (``OAUTH:TOKENS_UNREADABLE``: authorise again, or set the key it was sealed with).
    """

    def __init__(self, store: ObjectStore, key: str, fetch: TokenFetcher | None = None, *,
                 leeway: float = 120.0, lock_timeout: float = 60.0,
                 sealer: SecretSealer | None | Literal["environment"] = "environment") -> None:
        self.store = store
        self.key = key
        self._fetch = fetch
        self.sealer = sealer_from_environ() if sealer == "environment" else sealer
        self.leeway = leeway
        self.lock_timeout = lock_timeout
        self._current: AccessToken | None = None
        self._lock = anyio.Lock()
        #: How many times this process fetched a new token (metrics, tests).
        self.refresh_count = 0

    async def stored(self) -> AccessToken | None:
        """The token in the store (another process may have refreshed it).

        A plaintext row from before a key was configured is read, and rewritten sealed unless a
        peer replaced it meanwhile.
        """
        row = await self.store.get(TOKENS_NAMESPACE, self.key)
        if not row:
            return None
        if is_sealed(row):
            if self.sealer is None:
                raise SealedSecretError(
                    f"the stored OAuth tokens of {self._context} are encrypted and SPLICE_SECURE_KEY "
                    "is not set: set the key they were sealed with, or authorise the connection again")
            return AccessToken.from_dict(self.sealer.open(row, self._context))
        token = AccessToken.from_dict(row)
        if self.sealer is None:
            warn_unsealed_once("OAuth access and refresh tokens")
        else:
            await self.store.compare_and_set(TOKENS_NAMESPACE, self.key, row, self._row(token))
        return token

    @property
    def _context(self) -> str:
        return f"{TOKENS_NAMESPACE}/{self.key}"

    def _row(self, token: AccessToken) -> dict[str, Any]:
        """The stored form of ``token``: sealed when there is a key."""
        if self.sealer is None:
            warn_unsealed_once("OAuth access and refresh tokens")
            return token.to_dict()
        return self.sealer.seal(token.to_dict(), self._context)

    async def seed(self, token: AccessToken) -> None:
        """Store a token obtained elsewhere (the first authorization of an account).

        This is how a plugin's own command (an OAuth consent walk-through) persists the tokens of
        a connection: under the key the connection's token source reads, never by writing the
        store directly.
        """
        async with self._lock:
            await self.store.put(TOKENS_NAMESPACE, self.key, self._row(token))
            self._current = token

    async def token(self) -> AccessToken:
        """A token valid for at least ``leeway`` seconds, refreshing only when needed."""
        current = self._current
        if current is not None and not current.expires_within(self.leeway):
            return current
        return await self._renew(stale=current, force=False)

    async def refresh(self, stale: AccessToken | None) -> AccessToken:
        """A token other than ``stale`` (which the server just refused).

        If another task or process has already replaced ``stale``, that replacement is returned and no
        second refresh happens.
        """
        return await self._renew(stale=stale, force=True)

    async def invalidate(self) -> None:
        """Forget the in-memory token (the next call re-reads the store)."""
        self._current = None

    async def _renew(self, *, stale: AccessToken | None, force: bool) -> AccessToken:
        async with self._lock:
            if self._usable(self._current, stale, force):
                assert self._current is not None
                return self._current
            stored = await self.stored()
            if self._usable(stored, stale, force):
                assert stored is not None
                self._current = stored
                return stored
            async with self.store.lock(f"oauth:{self.key}", timeout=self.lock_timeout):
                # Re-read under the cross-process lock: a peer may have refreshed meanwhile.
                stored = await self.stored()
                if self._usable(stored, stale, force):
                    assert stored is not None
                    self._current = stored
                    return stored
                if self._fetch is None:
                    raise RuntimeError(f"no token is stored under {self.key!r} and this token "
                                       "source cannot fetch one")
                fresh = await self._fetch(stored)
                self.refresh_count += 1
                await self.store.put(TOKENS_NAMESPACE, self.key, self._row(fresh))
                self._current = fresh
                return fresh

    def _usable(self, token: AccessToken | None, stale: AccessToken | None, force: bool) -> bool:
        if token is None or token.expires_within(self.leeway):
            return False
        return not (force and stale is not None and token.value == stale.value)


class TokenObserver(Protocol):
    """Told whether a connection can get tokens (the runtime's metrics, for alerts)."""

    def token_refresh_failed(self, connector: str, error: BaseException) -> None:
        """Getting a token failed."""

    def token_obtained(self, connector: str) -> None:
        """A token was had."""


class OAuth2Auth(httpx.Auth):
    """Bearer token on every request; on 401, a refresh and a replay, at most ``max_refreshes`` times.

    A replay can be refused too (the new token expired while the replay waited for a slot, or a
    peer process rotated it meanwhile): it is refreshed and replayed again rather than failing an
    event that the next attempt would get through; a token the server refuses right after each of
    ``max_refreshes`` refreshes gives the 401 back.

    ``is_unauthorized`` lets a connector recognise its API's "session expired" answer (Salesforce
    sends 401 ``INVALID_SESSION_ID``; QuickBooks 401 with fault code 3200).
    """

    requires_response_body = False

    def __init__(self, source: StoredTokenSource,
                 is_unauthorized: Callable[[httpx.Response], bool] | None = None, *,
                 max_refreshes: int = 3) -> None:
        self.source = source
        self._is_unauthorized = is_unauthorized or (lambda response: response.status_code == 401)
        self.max_refreshes = max_refreshes
        self._connector = ""
        self._metrics: TokenObserver | None = None

    def observe(self, connector: str, metrics: TokenObserver) -> None:
        """Tell ``metrics`` when a token cannot be had (a refresh failed) and when one is had again."""
        self._connector, self._metrics = connector, metrics

    async def _token(self, stale: AccessToken | None = None, *, refresh: bool = False
                     ) -> AccessToken:
        try:
            token = await (self.source.refresh(stale) if refresh else self.source.token())
        except Exception as exc:
            if self._metrics is not None:
                self._metrics.token_refresh_failed(self._connector, exc)
            raise
        if self._metrics is not None:
            self._metrics.token_obtained(self._connector)
        return token

    async def attach(self, request: httpx.Request) -> None:
        """Put the current token on ``request`` (refreshed first when it is about to expire)."""
        token = await self._token()
        request.headers["Authorization"] = f"Bearer {token.value}"
        request.extensions[_USED_TOKEN] = token

    def sync_auth_flow(self, request: httpx.Request) -> Any:  # pragma: no cover - async only
        raise RuntimeError("OAuth2Auth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.extensions[AUTH_EXTENSION] = self
        await self.attach(request)  # replaced on each attempt by a client of create_http_client
        refreshes = 0
        while True:
            response = yield request
            if not self._is_unauthorized(response) or refreshes >= self.max_refreshes:
                return
            refreshes += 1
            await response.aread()
            refused: AccessToken = request.extensions[_USED_TOKEN]
            fresh = await self._token(refused, refresh=True)
            request.headers["Authorization"] = f"Bearer {fresh.value}"
            request.extensions[_USED_TOKEN] = fresh

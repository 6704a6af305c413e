"""OAuth 2.0 for QuickBooks: refresh with rotation, first authorization, reconnect detection.

Intuit rotates refresh tokens: a refresh may hand back a new one, after which the old one stops
working. Losing the new one means a person must authorize the app again, so the token life cycle runs
through :class:`runtime.StoredTokenSource`, which refreshes once at a time per realm (across
processes through the store's lock) and stores what :class:`RefreshTokenFetcher` returns, with the
rotated refresh token, before the new access token is used.

``invalid_grant`` is not the end by itself: a peer process may have rotated the token a moment ago.
The fetcher re-reads the store and tries the newer refresh token once; only then does it raise
``QUICKBOOKS:RECONNECT_REQUIRED`` and record the alert that ``status()`` shows.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from connectors.quickbooks.config import AUTHORIZE_URL, SCOPE, QuickBooksSettings, token_key
from connectors.quickbooks.errors import quickbooks_error, reconnect_required
from runtime import AccessToken, ObjectStore, StoredTokenSource, map_http_errors

__all__ = [
    "ALERTS_NAMESPACE",
    "RefreshTokenFetcher",
    "authorization_url",
    "exchange_code",
    "token_from_response",
]

#: Where a realm's "reconnect required" alert is kept (read by ``status()`` and operators).
ALERTS_NAMESPACE = "quickbooks-alerts"


class _InvalidGrant(Exception):
    """The token endpoint refused the refresh token (expired, revoked or rotated away)."""


def authorization_url(client_id: str, redirect_uri: str, state: str, *,
                      authorize_url: str = AUTHORIZE_URL, scope: str = SCOPE) -> str:
    """The consent page a person opens once to connect a company."""
    query = urlencode({"client_id": client_id, "response_type": "code", "scope": scope,
                       "redirect_uri": redirect_uri, "state": state})
    return f"{authorize_url}?{query}"


def token_from_response(payload: dict[str, Any], realm_id: str, *,
                        now: float | None = None) -> AccessToken:
    """An :class:`AccessToken` from a token-endpoint answer, keeping the (rotated) refresh token."""
    now = time.time() if now is None else now
    extra: dict[str, Any] = {"refresh_token": payload["refresh_token"], "realm_id": realm_id}
    if payload.get("x_refresh_token_expires_in") is not None:
        extra["refresh_token_expires_at"] = now + float(payload["x_refresh_token_expires_in"])
    if payload.get("x_refresh_token_hard_expires_in") is not None:
        extra["refresh_token_hard_expires_at"] = (
            now + float(payload["x_refresh_token_hard_expires_in"]))
    return AccessToken(value=str(payload["access_token"]),
                       expires_at=now + float(payload.get("expires_in") or 3600),
                       token_type=str(payload.get("token_type") or "Bearer"), extra=extra)


async def _token_call(http: httpx.AsyncClient, token_url: str, client_id: str, client_secret: str,
                      form: dict[str, str]) -> dict[str, Any]:
    with map_http_errors("QUICKBOOKS"):
        response = await http.post(token_url, data=form, auth=(client_id, client_secret),
                                   headers={"Accept": "application/json",
                                            # Ask for the five-year hard expiry (status shows it).
                                            "x-include-refresh-token-hard-expires-in": "true"})
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
        return body
    error = body.get("error") if isinstance(body, dict) else None
    if error == "invalid_grant":
        raise _InvalidGrant(str(body.get("error_description") or "invalid_grant"))
    if response.status_code == 401 or error == "invalid_client":
        raise quickbooks_error("AUTHENTICATION", "the token endpoint rejected the client id or secret",
                               status=response.status_code)
    retryable = response.status_code == 429 or response.status_code >= 500
    raise quickbooks_error("AUTH_SERVER", f"token endpoint answered HTTP {response.status_code}"
                           + (f" ({error})" if error else ""), retryable=retryable,
                           status=response.status_code)


async def exchange_code(http: httpx.AsyncClient, *, token_url: str, client_id: str,
                        client_secret: str, code: str, redirect_uri: str,
                        realm_id: str) -> AccessToken:
    """Trade the authorization code of the first consent for the realm's first tokens."""
    try:
        body = await _token_call(http, token_url, client_id, client_secret,
                                 {"grant_type": "authorization_code", "code": code,
                                  "redirect_uri": redirect_uri})
    except _InvalidGrant as exc:
        raise quickbooks_error("AUTHENTICATION", f"the authorization code was refused ({exc}); "
                               "codes are single-use and expire after minutes") from None
    return token_from_response(body, realm_id)


class RefreshTokenFetcher:
    """The ``fetch`` of the realm's :class:`StoredTokenSource`: one refresh, rotation kept."""

    def __init__(self, settings: QuickBooksSettings, http: httpx.AsyncClient, store: ObjectStore,
                 logger: logging.Logger | None = None) -> None:
        self.settings = settings
        self.http = http
        self.store = store
        self.logger = logger or logging.getLogger("splice.quickbooks")
        self.key = token_key(settings.realm_id)
        #: Reads what a peer stored; the connection's own token source calls this fetcher.
        self._tokens = StoredTokenSource(store, self.key)

    async def _refresh(self, refresh_token: str) -> AccessToken:
        s = self.settings
        body = await _token_call(self.http, s.token_url, s.client_id, s.client_secret,
                                 {"grant_type": "refresh_token", "refresh_token": refresh_token})
        return token_from_response(body, s.realm_id)

    async def __call__(self, current: AccessToken | None) -> AccessToken:
        """A new token from the newest refresh token we know of."""
        first = current.refresh_token if current is not None else None
        first = first or self.settings.refresh_token
        if not first:
            raise await self._dead("no refresh token is stored for this realm")
        tried = {first}
        try:
            return await self._refresh(first)
        except _InvalidGrant as exc:
            reason = str(exc)
        # A peer may have rotated the token since we read it: take what is stored now.
        stored = await self._tokens.stored()
        if stored is not None and stored.value != (current.value if current else None) \
                and not stored.expires_within(60):
            return stored
        for candidate in (stored.refresh_token if stored else None, self.settings.refresh_token):
            if not candidate or candidate in tried:
                continue
            tried.add(candidate)
            try:
                return await self._refresh(candidate)
            except _InvalidGrant as exc:
                reason = str(exc)
        raise await self._dead(f"invalid_grant: {reason}")

    async def _dead(self, reason: str) -> Exception:
        realm = self.settings.realm_id
        self.logger.error("QuickBooks realm %s must be connected again: %s", realm, reason)
        await self.store.put(ALERTS_NAMESPACE, realm, {"reconnectRequired": True, "reason": reason,
                                                       "at": time.time()})
        return reconnect_required(realm, reason)

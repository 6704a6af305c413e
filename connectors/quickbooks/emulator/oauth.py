"""The emulator's OAuth 2.0 authority: consent, code exchange, refresh with rotation.

Like Intuit's, a refresh answers with a refresh token, and once a new value was handed out the old
one gets ``invalid_grant``. ``rotation="always"`` (the default) rotates on every refresh, so a client
that loses the new value, or refreshes twice in parallel, finds out at once instead of after a day.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OAuthAuthority", "TokenError"]


class TokenError(Exception):
    """An OAuth error answer: ``{"error": ..., "error_description": ...}`` with a status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        """The JSON body of the answer."""
        return {"error": self.error, "error_description": self.description}


@dataclass
class OAuthAuthority:
    """Clients, codes and tokens of one emulated Intuit app."""

    client_id: str = "emulator-client"
    client_secret: str = "emulator-secret"
    access_token_ttl: float = 3600.0
    refresh_token_ttl: float = 8_726_400.0
    #: Seconds left of the five-year cap Intuit puts on every refresh token.
    refresh_token_hard_ttl: float = 5 * 365 * 86400.0
    rotation: str = "always"
    clock: Callable[[], float] = time.time
    access: dict[str, tuple[str, float]] = field(default_factory=dict)
    refresh: dict[str, str] = field(default_factory=dict)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: How many refreshes were served per realm (tests assert single flight with it).
    refresh_counts: dict[str, int] = field(default_factory=dict)

    def issue_refresh_token(self, realm: str) -> str:
        """A new valid refresh token for ``realm`` (seeding, the first consent)."""
        token = "RT" + secrets.token_urlsafe(24)
        self.refresh[token] = realm
        return token

    def valid_refresh_tokens(self, realm: str) -> list[str]:
        """Refresh tokens of ``realm`` that would still work."""
        return [t for t, r in self.refresh.items() if r == realm]

    def authorize(self, client_id: str, redirect_uri: str, realm: str) -> str:
        """Consent given at once: a one-time code bound to the redirect URI."""
        if client_id != self.client_id:
            raise TokenError("invalid_client", "unknown client_id", 401)
        code = "AB" + secrets.token_urlsafe(18)
        self.codes[code] = (realm, redirect_uri)
        return code

    def check_client(self, authorization: str | None) -> None:
        """Basic authentication of the app on the token endpoint."""
        try:
            scheme, _, raw = (authorization or "").partition(" ")
            cid, _, secret = base64.b64decode(raw).decode().partition(":")
        except ValueError:
            cid = secret = scheme = ""
        if scheme.lower() != "basic" or cid != self.client_id or secret != self.client_secret:
            raise TokenError("invalid_client", "Client authentication failed", 401)

    def _tokens(self, realm: str, refresh_token: str) -> dict[str, Any]:
        access = "eyJ" + secrets.token_urlsafe(32)
        self.access[access] = (realm, self.clock() + self.access_token_ttl)
        return {"token_type": "bearer", "access_token": access,
                "expires_in": int(self.access_token_ttl), "refresh_token": refresh_token,
                "x_refresh_token_expires_in": int(self.refresh_token_ttl)}

    def grant(self, form: dict[str, str]) -> dict[str, Any]:
        """Answer a token request (``authorization_code`` or ``refresh_token``)."""
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            entry = self.codes.pop(form.get("code", ""), None)
            if entry is None or entry[1] != form.get("redirect_uri"):
                raise TokenError("invalid_grant", "Token invalid")
            realm = entry[0]
            return {**self._tokens(realm, self.issue_refresh_token(realm)), "realmId": realm}
        if grant_type == "refresh_token":
            old = form.get("refresh_token", "")
            owner = self.refresh.get(old)
            if owner is None:
                raise TokenError("invalid_grant", "Incorrect or invalid refresh token")
            self.refresh_counts[owner] = self.refresh_counts.get(owner, 0) + 1
            new = old
            if self.rotation == "always":
                del self.refresh[old]
                new = self.issue_refresh_token(owner)
            return self._tokens(owner, new)
        raise TokenError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def check_access(self, authorization: str | None) -> str | None:
        """Why a bearer token is refused (``None``: accepted): malformed, unknown or expired."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or len(token) < 8:
            return "malformed"
        entry = self.access.get(token)
        if entry is None:
            return "unknown"
        if entry[1] <= self.clock():
            return "expired"
        return None

    def expire_all(self) -> None:
        """Every access token issued so far stops working (the token-expiry fault)."""
        now = self.clock()
        self.access = {k: (realm, min(exp, now)) for k, (realm, exp) in self.access.items()}

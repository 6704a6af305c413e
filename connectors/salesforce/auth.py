"""Getting Salesforce access tokens: client credentials, JWT bearer and refresh token flows.

Salesforce token responses carry no ``expires_in`` (the session lives as long as the org's timeout
policy and activity allow), so tokens are stored without an expiry and renewed reactively: on a 401
``INVALID_SESSION_ID`` the :class:`runtime.OAuth2Auth` layer asks for a new one and replays the
request (again if the replay is refused too, a few times at most). The token response's ``instance_url`` is kept with the token; data calls
go there, never to the login host.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connectors.salesforce.config import SalesforceSettings
from connectors.salesforce.errors import SalesforceError
from runtime import AccessToken, HttpError, TokenFetcher, map_http_errors, redact

__all__ = ["build_jwt", "create_token_fetcher", "token_request"]

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: JWT lifetime: Salesforce tolerates little clock skew; a few minutes is what its docs use.
JWT_LIFETIME = 180


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def build_jwt(settings: SalesforceSettings, *, now: float | None = None) -> str:
    """A JWT bearer assertion signed RS256 with the connection's private key."""
    assert settings.private_key is not None and settings.username is not None
    key = serialization.load_pem_private_key(settings.private_key.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SalesforceError("private-key must be an RSA key (JWT bearer flow signs with RS256)",
                              error_type="SALESFORCE:AUTHENTICATION")
    issued = int(time.time() if now is None else now)
    claims = {"iss": settings.client_id, "sub": settings.username,
              "aud": settings.audience or settings.login_url, "exp": issued + JWT_LIFETIME}
    header = {"alg": "RS256", "typ": "JWT"}
    signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64url(signature)


def token_request(settings: SalesforceSettings, current: AccessToken | None) -> dict[str, str]:
    """The form fields of the token request for the configured flow."""
    if settings.auth == "client-credentials":
        return {"grant_type": "client_credentials", "client_id": settings.client_id,
                "client_secret": settings.client_secret or ""}
    if settings.auth == "jwt":
        return {"grant_type": JWT_GRANT, "assertion": build_jwt(settings)}
    # Refresh token: a rotated refresh token stored with the current token wins over the setting.
    refresh = (current.refresh_token if current else None) or settings.refresh_token or ""
    form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": settings.client_id}
    if settings.client_secret:
        form["client_secret"] = settings.client_secret
    return form


def create_token_fetcher(settings: SalesforceSettings,
                         http: Callable[[], httpx.AsyncClient]) -> TokenFetcher:
    """``fetch(current)`` for :class:`runtime.StoredTokenSource`.

    ``http`` returns the plain (unauthenticated) client pointed at ``login-url``.
    """

    async def fetch(current: AccessToken | None) -> AccessToken:
        form = token_request(settings, current)
        try:
            with map_http_errors("SALESFORCE"), anyio.fail_after(settings.timeout * 3):
                response = await http().post("/services/oauth2/token", data=form,
                                             headers={"Accept": "application/json"})
        except HttpError as error:
            raise SalesforceError(f"token request: {error.message}", error_type=error.error_type,
                                  retryable=error.retryable) from None
        except TimeoutError:
            raise SalesforceError("token request did not finish in time", error_type="SALESFORCE:TIMEOUT",
                                  retryable=True) from None
        try:
            body: Any = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            code = str(body.get("error", "")) if isinstance(body, dict) else ""
            described = str(body.get("error_description", "")) if isinstance(body, dict) else ""
            retryable = response.status_code >= 500 or response.status_code == 429
            raise SalesforceError(
                redact(f"token request failed ({settings.auth}): {code or response.status_code}"
                       + (f" - {described}" if described else "")),
                error_type="SALESFORCE:AUTHENTICATION", retryable=retryable,
                status=response.status_code, details={"error": code} if code else None)
        extra = {k: v for k, v in body.items() if k in ("instance_url", "id", "issued_at", "scope")}
        if isinstance(body.get("refresh_token"), str):
            extra["refresh_token"] = body["refresh_token"]
        elif current is not None and current.refresh_token:
            extra["refresh_token"] = current.refresh_token
        return AccessToken(value=str(body["access_token"]), expires_at=None,
                           token_type=str(body.get("token_type") or "Bearer"), extra=extra)

    return fetch

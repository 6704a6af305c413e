"""The ``salesforce`` connection settings: their spec and their parsed, read-only form."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime import ConnectionConfigError, Param

__all__ = ["CONNECTION_PARAMS", "DEFAULT_API_VERSION", "SalesforceSettings"]

DEFAULT_API_VERSION = "66.0"
AUTH_FLOWS = ("client-credentials", "jwt", "refresh-token")

CONNECTION_PARAMS: tuple[Param, ...] = (
    Param("auth", required=True, enum=AUTH_FLOWS, dynamic=False,
          summary="OAuth 2.0 flow: client-credentials (My Domain login-url), jwt (username + "
                  "private-key) or refresh-token"),
    Param("login-url", default="https://login.salesforce.com", dynamic=False,
          summary="Base URL of the token endpoint: login/test.salesforce.com, the org's My Domain "
                  "(required for client-credentials) or an emulator"),
    Param("instance-url", dynamic=False,
          summary="Override the instance URL; by default the token response's instance_url is used"),
    Param("client-id", required=True, dynamic=False, summary="Consumer key of the connected app"),
    Param("client-secret", secret=True, dynamic=False,
          summary="Consumer secret (client-credentials; optional for refresh-token)"),
    Param("username", dynamic=False, summary="Integration user (JWT subject)"),
    Param("private-key", secret=True, dynamic=False,
          summary="PEM private key whose certificate is uploaded to the app (JWT, RS256)"),
    Param("refresh-token", secret=True, dynamic=False,
          summary="Refresh token from a one-time web-server authorization (refresh-token flow)"),
    Param("audience", dynamic=False,
          summary="JWT aud claim; defaults to login-url (https://login.salesforce.com or test)"),
    Param("api-version", default=DEFAULT_API_VERSION, dynamic=False,
          summary="REST API version without the leading v", examples=("66.0",)),
    Param("timeout", type="duration", default="30s", dynamic=False,
          summary="Timeout of one HTTP request"),
    Param("max-concurrency", type="integer", default=10, dynamic=False,
          summary="Requests in flight at once for this org"),
    Param("requests-per-second", type="number", default=25, dynamic=False,
          summary="Client-side cap on request rate for this org"),
    Param("client-name", default="splice", dynamic=False,
          summary="Sent as Sforce-Call-Options client=...; shows up in CDC changeOrigin so a flow "
                  "can ignore its own writes"),
    Param("retries", type="integer", default=3, dynamic=False,
          summary="Transport retries of 503/429 (any call) and of 5xx/timeouts (idempotent calls)"),
    Param("retry-delay", type="duration", default="0.5s", dynamic=False,
          summary="First pause before a transport retry (grows exponentially, with jitter)"),
    Param("lock-retries", type="integer", default=3, dynamic=False,
          summary="How often a write refused with UNABLE_TO_LOCK_ROW is tried again in place"),
)

@dataclass(frozen=True, slots=True)
class SalesforceSettings:
    """Validated connection settings, read from the typed values the runtime hands over.

    The defaults live in :data:`CONNECTION_PARAMS` only: the runtime fills them in, turns
    durations into seconds and numbers into numbers, and registers the secrets for redaction.
    """

    auth: str
    login_url: str
    client_id: str
    api_version: str
    timeout: float
    max_concurrency: int
    requests_per_second: float
    client_name: str
    lock_retries: int
    retries: int
    retry_delay: float
    instance_url: str | None = None
    client_secret: str | None = None
    username: str | None = None
    private_key: str | None = None
    refresh_token: str | None = None
    audience: str | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SalesforceSettings:
        """Check what depends on several settings at once, reporting every problem together."""
        problems: list[str] = []
        auth = settings.get("auth")
        if auth not in AUTH_FLOWS:
            problems.append(f"auth must be one of {', '.join(AUTH_FLOWS)}")
        if not settings.get("client-id"):
            problems.append("client-id is required")
        needs = {"client-credentials": ("client-secret",), "jwt": ("username", "private-key"),
                 "refresh-token": ("refresh-token",)}.get(str(auth), ())
        problems.extend(f"{key} is required for auth: {auth}" for key in needs if not settings.get(key))
        version = str(settings["api-version"]).lstrip("vV")
        if not re.fullmatch(r"\d+\.\d", version):
            problems.append(f"api-version must look like 66.0, got {version!r}")
        if problems:
            raise ConnectionConfigError("salesforce connection: " + "; ".join(problems),
                                        details={"problems": problems})
        instance = settings.get("instance-url")
        return cls(
            auth=str(auth),
            login_url=str(settings["login-url"]).rstrip("/"),
            client_id=str(settings["client-id"]),
            instance_url=str(instance).rstrip("/") if instance else None,
            client_secret=settings.get("client-secret"),
            username=settings.get("username"),
            private_key=settings.get("private-key"),
            refresh_token=settings.get("refresh-token"),
            audience=settings.get("audience"),
            api_version=version,
            timeout=settings["timeout"],
            max_concurrency=settings["max-concurrency"],
            requests_per_second=settings["requests-per-second"],
            client_name=str(settings["client-name"]),
            lock_retries=settings["lock-retries"],
            retries=settings["retries"],
            retry_delay=settings["retry-delay"],
        )

    @property
    def token_key(self) -> str:
        """Store key of this org/app/user's token (no secret in it)."""
        return f"salesforce:{self.login_url}:{self.client_id}:{self.username or self.auth}"

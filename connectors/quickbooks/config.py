"""Connection settings of the quickbooks connector: the parameter schema and its typed form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime import ConnectionConfigError, Param

__all__ = [
    "AUTHORIZE_URL",
    "BASE_URLS",
    "CONNECTION_PARAMS",
    "DEFAULT_MINOR_VERSION",
    "QuickBooksSettings",
    "SCOPE",
    "TOKEN_URL",
    "token_key",
]

BASE_URLS = {
    "production": "https://quickbooks.api.intuit.com",
    "sandbox": "https://sandbox-quickbooks.api.intuit.com",
}
TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
AUTHORIZE_URL = "https://appcenter.intuit.com/connect/oauth2"
SCOPE = "com.intuit.quickbooks.accounting"
#: Since 2025-08-01 anything lower (or missing) is served as 75 anyway; pin it explicitly.
DEFAULT_MINOR_VERSION = 75


def token_key(realm_id: str) -> str:
    """The object-store key of a realm's tokens (shared by the connection and the connect command)."""
    return f"quickbooks:{realm_id}"


def _secret(name: str, summary: str, *, required: bool = False) -> Param:
    return Param(name, required=required, summary=summary, secret=True, dynamic=False)


def _static(name: str, type_: Any = "string", **kw: Any) -> Param:
    return Param(name, type=type_, dynamic=False, **kw)


CONNECTION_PARAMS: tuple[Param, ...] = (
    _static("client-id", required=True, summary="OAuth client id of the Intuit app"),
    _secret("client-secret", "OAuth client secret of the Intuit app", required=True),
    _static("realm-id", required=True, summary="QuickBooks company id (realmId)"),
    _secret("refresh-token", "Initial refresh token; optional once the object store holds one"),
    _static("environment", default="production", enum=("production", "sandbox"),
            summary="Shortcut for the API base URL when base-url is not given"),
    _static("base-url", summary="API base URL (production, sandbox or an emulator)"),
    _static("token-url", default=TOKEN_URL, summary="OAuth token endpoint"),
    _static("minor-version", "integer", default=DEFAULT_MINOR_VERSION,
            summary="minorversion sent on every call"),
    _secret("webhook-verifier-token", "Verifier token of the app's webhooks (intuit-signature)"),
    _static("requests-per-minute", "integer", default=500, summary="Per-realm request budget"),
    _static("max-concurrent", "integer", default=10, summary="Per-realm requests in flight"),
    _static("batch-per-minute", "integer", default=40, summary="Per-realm batch request budget"),
    _static("rate-jitter", "number", default=1.0,
            summary="Seconds by which QuickBooks may see requests bunch compared with when they "
                    "left (network, load); the budgets leave that much of a minute unspent"),
    _static("timeout", "number", default=30.0, summary="Seconds per HTTP call"),
    _static("retry-delay", "number", default=0.5,
            summary="Seconds of the first pause before a transport retry (5xx, 429; grows "
                    "exponentially); a 429 pauses the whole realm that long"),
)


@dataclass(frozen=True, slots=True)
class QuickBooksSettings:
    """Validated connection settings (the dashed names of the spec as attributes).

    :meth:`from_mapping` reads what the runtime hands ``ConnectionSpec.open``: defaults (kept in
    :data:`CONNECTION_PARAMS` only) filled in, numbers typed, secrets registered for redaction.
    """

    client_id: str
    client_secret: str
    realm_id: str
    base_url: str
    token_url: str
    minor_version: int
    requests_per_minute: int
    max_concurrent: int
    batch_per_minute: int
    timeout: float
    retry_delay: float
    rate_jitter: float = 1.0
    refresh_token: str | None = None
    webhook_verifier_token: str | None = None

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> QuickBooksSettings:
        """Read a ``connections:`` entry; every problem is reported at once."""
        problems = [f"'{name}' is required" for name in ("client-id", "client-secret", "realm-id")
                    if not settings.get(name)]
        env = str(settings["environment"])
        if env not in BASE_URLS:
            problems.append(f"'environment' must be production or sandbox, not {env!r}")
        if problems:
            raise ConnectionConfigError("quickbooks connection: " + "; ".join(problems),
                                        error_type="CONNECTION:CONFIG")
        base = str(settings.get("base-url") or BASE_URLS[env]).rstrip("/")
        return cls(
            client_id=str(settings["client-id"]),
            client_secret=str(settings["client-secret"]),
            realm_id=str(settings["realm-id"]),
            base_url=base,
            token_url=str(settings["token-url"]),
            refresh_token=settings.get("refresh-token") or None,
            minor_version=settings["minor-version"],
            webhook_verifier_token=settings.get("webhook-verifier-token") or None,
            requests_per_minute=settings["requests-per-minute"],
            max_concurrent=settings["max-concurrent"],
            batch_per_minute=settings["batch-per-minute"],
            timeout=settings["timeout"],
            retry_delay=settings["retry-delay"],
            rate_jitter=max(float(settings["rate-jitter"]), 0.0),
        )

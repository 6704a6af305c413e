"""The emulator's mutable state: the org, faults, issued tokens, query cursors and jobs."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from connectors.salesforce.emulator.demo import seed_demo
from connectors.salesforce.emulator.demo_currency import seed_multicurrency_demo
from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.faults import Faults
from connectors.salesforce.emulator.multicurrency import enable_multicurrency
from connectors.salesforce.emulator.store import Org

__all__ = ["Emulator", "EmulatorOptions"]


@dataclass(slots=True)
class EmulatorOptions:
    """How an emulator instance behaves (``create_app(**options)``)."""

    demo: bool = False
    #: Records per query page (real default 2000; Sforce-Query-Options batchSize may lower it).
    page_size: int = 2000
    api_version: str = "66.0"
    #: instance_url in token responses (default: the URL the token request came to).
    instance_url: str | None = None
    #: client_id -> client_secret accepted by the client credentials flow (None: accept any).
    clients: dict[str, str] | None = None
    #: client_id -> PEM public key used to verify JWT bearer assertions (None: not verified).
    jwt_public_keys: dict[str, str] | None = None
    #: Issue a new refresh token on every refresh and refuse the old one.
    rotate_refresh_tokens: bool = False
    #: Seconds a CometD /meta/connect waits for events before answering empty.
    long_poll_timeout: float = 110.0
    #: Status polls a Bulk 2.0 query job answers InProgress before JobComplete.
    bulk_polls: int = 1
    #: Open query cursors kept; opening more evicts the oldest (INVALID_QUERY_LOCATOR later).
    max_cursors: int = 10
    event_retention: int = 100_000
    seed: dict[str, list[dict[str, Any]]] | None = None
    #: Multi-currency on with these currencies (the first is corporate); None: single currency.
    multicurrency: tuple[str, ...] | None = None
    faults: dict[str, Any] = field(default_factory=dict)


class Emulator:
    """State shared by every route of one emulator app."""

    def __init__(self, options: EmulatorOptions) -> None:
        self.options = options
        self.faults = Faults()
        self.faults.update(options.faults)
        self.reset()

    def reset(self) -> None:
        """Fresh org (demo/seed data again), no tokens, cursors, jobs or streaming clients."""
        self.org = Org(api_version=self.options.api_version, event_retention=self.options.event_retention)
        self.tokens: dict[str, float] = {}
        self.refresh_tokens: set[str] = set()
        self.cursors: OrderedDict[str, Any] = OrderedDict()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.ingest_jobs: dict[str, dict[str, Any]] = {}
        self.streaming_clients: dict[str, dict[str, Any]] = {}
        self.request_count = 0
        if self.options.multicurrency:
            enable_multicurrency(self.org, tuple(self.options.multicurrency))
        if self.options.demo:
            seed_demo(self.org)
            if self.options.multicurrency:
                seed_multicurrency_demo(self.org)
        for obj, records in (self.options.seed or {}).items():
            for record in records:
                self.org.create(obj, record)

    # -- tokens -------------------------------------------------------------------------------

    def issue_token(self) -> str:
        """A new session id shaped like Salesforce's (``<orgId>!<opaque>``)."""
        token = f"{self.org.org_id[:15]}!AR{secrets.token_urlsafe(40)}"
        self.tokens[token] = time.monotonic()
        return token

    def check_token(self, authorization: str | None) -> None:
        """401 INVALID_SESSION_ID unless the bearer token is live."""
        token = (authorization or "").removeprefix("Bearer ").removeprefix("OAuth ").strip()
        issued = self.tokens.get(token)
        lifetime = self.faults.token_lifetime
        if issued is None or (lifetime is not None and time.monotonic() - issued > lifetime):
            self.tokens.pop(token, None)
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def expire_tokens(self) -> int:
        """Invalidate every issued access token (as a session timeout would)."""
        count = len(self.tokens)
        self.tokens.clear()
        return count

    # -- limits -------------------------------------------------------------------------------

    def count_request(self) -> None:
        """Spend one API request, or 403 REQUEST_LIMIT_EXCEEDED when the allocation is used up."""
        if self.faults.api_used >= self.faults.daily_limit:
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        self.faults.api_used += 1
        self.request_count += 1
        every = self.faults.token_expiry_every
        if every and self.request_count % every == 0:
            self.tokens.clear()
            self.faults.served["token_expiry"] = self.faults.served.get("token_expiry", 0) + 1

    def limit_info(self) -> str:
        """The ``Sforce-Limit-Info`` header value."""
        return f"api-usage={self.faults.api_used}/{self.faults.daily_limit}"

    def new_cursor(self, result: Any) -> str:
        """Keep a query's result under a new cursor id (the oldest cursor beyond the cap is lost)."""
        cursor = "01gRx" + secrets.token_hex(5).upper()[:10] + "AAA"
        self.cursors[cursor] = result
        while len(self.cursors) > self.options.max_cursors:
            self.cursors.popitem(last=False)
        return cursor

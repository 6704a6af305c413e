"""The QuickBooks connection: one layered HTTP client per connection, speaking Accounting API v3.

Requests go ``/v3/company/{realmId}/{entity}`` with ``minorversion`` pinned and JSON both ways; the
layered client of the runtime adds the OAuth token (refreshed before expiry and on 401, put on each
attempt after its rate-limit wait), the per-realm rate limits, retries and a span per attempt. Every answer is checked for a fault, whatever
its status and shape, and turned into a typed ``QUICKBOOKS:*`` error.

Rate limits belong to the realm, not to the connection: two connections (or two flows) to one company
share one budget, a resource of the runtime (``ctx.budget``), so two runtimes in one process never
spend each other's, while replicas sharing a PostgreSQL store spend one budget together.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import httpx

from connectors.quickbooks.auth import ALERTS_NAMESPACE, RefreshTokenFetcher
from connectors.quickbooks.config import QuickBooksSettings, token_key
from connectors.quickbooks.errors import error_from_response, is_fault_payload, quickbooks_error
from connectors.quickbooks.money import dumps, loads
from connectors.quickbooks.query import page_query, query_entity
from connectors.quickbooks.shared_reads import SharedPages
from runtime import (
    IDEMPOTENT_EXTENSION,
    BudgetFactory,
    ConnectionContext,
    OAuth2Auth,
    ObjectStore,
    RateLimit,
    RetryOptions,
    StoredTokenSource,
    local_budget,
    map_http_errors,
)

__all__ = ["BATCH_ITEMS_EXTENSION", "LostAnswerObserver", "QuickBooksClient", "RealmLimits",
           "open_connection", "realm_limits"]

#: Hard ceiling of ``MAXRESULTS`` in one query page.
MAX_PAGE = 1000
#: Items QuickBooks takes in one ``/batch`` request.
MAX_BATCH_ITEMS = 30
#: Request extension: how many items a ``/batch`` request carries (each is metered).
BATCH_ITEMS_EXTENSION = "quickbooks.batch_items"


@dataclass(slots=True)
class RealmLimits:
    """The two budgets of one realm: all requests, and batch requests on top."""

    general: RateLimit
    batch: RateLimit
    sent: deque[float] = field(default_factory=deque)

    def pick(self, request: httpx.Request) -> RateLimit | None:
        """The budget a request spends (the token endpoint is not metered); a batch of N items
        spends N of the general budget, as QuickBooks meters each item like a request."""
        if "/v3/company/" not in request.url.path:
            return None
        now = time.monotonic()
        if not request.url.path.endswith("/batch"):
            self.sent.append(now)
            self._forget(now)
            return self.general
        items = max(int(request.extensions.get(BATCH_ITEMS_EXTENSION, 1)), 1)
        self.sent.extend([now] * items)
        self._forget(now)
        if isinstance(self.batch, _ChainedRateLimit):
            return self.batch.weighted(items)
        return self.batch

    def _forget(self, now: float) -> None:
        while self.sent and self.sent[0] < now - 60.0:
            self.sent.popleft()

    def used_last_minute(self) -> int:
        """How many metered requests left in the last 60 seconds."""
        self._forget(time.monotonic())
        return len(self.sent)


def realm_limits(settings: QuickBooksSettings, budget: BudgetFactory | None = None) -> RealmLimits:
    """The budgets of a realm, from ``budget`` (the connection's :meth:`ConnectionContext.budget`:
    one per realm in the runtime, in the store when replicas share one), else this process's own."""
    budget = budget or local_budget
    name = f"quickbooks:{settings.base_url}:{settings.realm_id}"
    # QuickBooks counts requests in any rolling minute: a burst of B plus a steady N - B per
    # minute never puts more than N into one minute. But QuickBooks counts arrivals and we count
    # departures: requests that left evenly may arrive bunched (the network, a busy machine). What
    # leaves in a minute and `rate-jitter` seconds may arrive in one minute, so the steady rate is
    # N - B spread over that longer time (and one request less).
    # A batch larger than the burst spends its tokens in portions before it leaves, and all its
    # items arrive at once: a minute may hold the portions it spent before that minute began too,
    # so the steady rate leaves that room as well (a batch of 30 over a burst of 10: 20; a realm
    # too small for a batch of 30 in half a minute is not given it).
    stretch = 60.0 / (60.0 + settings.rate_jitter)
    burst = min(settings.requests_per_minute // 2, max(settings.max_concurrent, 10))
    spill = max(min(MAX_BATCH_ITEMS, settings.requests_per_minute // 2) - burst, 0)
    general = budget(name, max((settings.requests_per_minute - burst - spill) * stretch - 1, 1), 60.0,
                     max_concurrent=settings.max_concurrent, burst=max(burst, 1))
    # Batch calls also count against the general budget; the batch bucket is the extra limit.
    batch_burst = min(settings.batch_per_minute // 2, 5)
    batch = budget(f"{name}:batch", max((settings.batch_per_minute - batch_burst) * stretch - 1, 1),
                   60.0, burst=max(batch_burst, 1))
    return RealmLimits(general=general, batch=_ChainedRateLimit(batch, general))


def _realm_key(settings: QuickBooksSettings) -> tuple[str, str, str, int, int, int, float]:
    """Connections with equal keys share one budget (same company, same configured limits)."""
    return ("quickbooks.realm-limits", settings.base_url, settings.realm_id,
            settings.requests_per_minute, settings.max_concurrent, settings.batch_per_minute,
            settings.rate_jitter)


class _ChainedRateLimit(RateLimit):
    """A batch slot spends one token of its own bucket and ``tokens`` of the realm's general
    limit (one per item of the batch), holding one of its in-flight slots."""

    def __init__(self, own: RateLimit, parent: RateLimit, tokens: int = 1) -> None:
        self.bucket = own.bucket
        self.concurrency = None
        self.parent = parent
        self.tokens = tokens

    def weighted(self, tokens: int) -> _ChainedRateLimit:
        """This limit (the same buckets) for a batch of ``tokens`` items."""
        view = copy.copy(self)
        view.tokens = tokens
        return view

    @asynccontextmanager
    async def slot(self, tokens: float = 1.0) -> AsyncIterator[None]:
        await self.bucket.acquire()
        # One token per item of the batch from the realm's general budget (spent in turns when
        # the batch is larger than the bucket's burst), and one of its in-flight slots.
        async with self.parent.slot(self.tokens * tokens):
            yield


class LostAnswerObserver(Protocol):
    """Told what became of a create whose answer was lost (the runtime's metrics)."""

    def lost_answer(self, connector: str, entity: str, outcome: str) -> None:
        """``outcome``: ``found`` by the lookup, or ``resent``."""


class QuickBooksClient:
    """What operations and sources of a quickbooks connection receive as ``ctx.connection``."""

    def __init__(self, settings: QuickBooksSettings, http: httpx.AsyncClient,
                 tokens: StoredTokenSource, limits: RealmLimits, store: ObjectStore,
                 observer: LostAnswerObserver | None = None) -> None:
        self.settings = settings
        self.http = http
        self.tokens = tokens
        self.limits = limits
        self.store = store
        self.observer = observer
        #: Identical query pages asked while one is in flight are asked once.
        self.shared_pages = SharedPages()

    @property
    def realm_id(self) -> str:
        """The company this connection talks to."""
        return self.settings.realm_id

    def path(self, resource: str) -> str:
        """``/v3/company/{realm}/{resource}`` (entity names are lower-case in URLs)."""
        return f"/v3/company/{self.realm_id}/{resource}"

    async def request(self, method: str, resource: str, *, params: Mapping[str, Any] | None = None,
                      body: Any = None, text: str | None = None, idempotent: bool = False,
                      metered: int = 1, content_type: str | None = None) -> Any:
        """Send one API call and return its parsed JSON (Decimals for money), or raise its fault.

        ``metered``: how many requests QuickBooks counts the call as (the items of a batch); the
        realm's budget spends that many. ``content_type`` names the type of an empty body
        (``/invoice/{id}/send`` wants ``application/octet-stream``).
        """
        query = {"minorversion": str(self.settings.minor_version)}
        query.update({k: str(v) for k, v in (params or {}).items() if v is not None})
        headers = {"Accept": "application/json"}
        content: bytes | None = None
        if text is not None:
            headers["Content-Type"] = "application/text"
            content = text.encode("utf-8")
        elif body is not None:
            headers["Content-Type"] = "application/json"
            content = dumps(body)
        elif content_type is not None:
            headers["Content-Type"] = content_type
            content = b""
        request = self.http.build_request(method, self.path(resource), params=query,
                                          headers=headers, content=content)
        if idempotent:
            request.extensions[IDEMPOTENT_EXTENSION] = True
        if metered != 1:
            request.extensions[BATCH_ITEMS_EXTENSION] = metered
        # The per-attempt timeout lives in httpx; this bounds retries and rate-limit waits too.
        try:
            with anyio.fail_after(self.settings.timeout * 6), map_http_errors("QUICKBOOKS"):
                response = await self.http.send(request)
        except TimeoutError:
            raise quickbooks_error("TIMEOUT", f"no answer to {method} {resource} in time "
                                   "(retries and rate-limit waits included)",
                                   retryable=True) from None
        finally:
            if method != "GET":  # answered or not, it may have written: later reads must see it
                self.shared_pages.write_ended()
        if response.status_code >= 400:
            raise error_from_response(response)
        try:
            payload = loads(response.content)
        except ValueError:
            raise quickbooks_error("SERVER_ERROR", "QuickBooks answered with a body that is not JSON",
                                   retryable=True, status=response.status_code) from None
        if is_fault_payload(payload):
            raise error_from_response(response)
        return payload

    # ------------------------------------------------------------------ entity calls

    async def read(self, entity: str, entity_id: str, *, include: str | None = None) -> dict[str, Any]:
        """``GET /{entity}/{id}`` (``include``: e.g. ``invoiceLink``)."""
        payload = await self.request("GET", f"{entity.lower()}/{entity_id}",
                                     params={"include": include})
        record: dict[str, Any] = payload[entity]
        return record

    async def write(self, entity: str, body: Mapping[str, Any], *, request_id: str | None = None,
                    operation: str | None = None, include: str | None = None,
                    retry_unanswered: bool = True) -> dict[str, Any]:
        """``POST /{entity}`` (create, update, delete, void); safe to retry when it has a requestid.

        With a requestid the HTTP layer sends the write again after a timeout or a 5xx, trusting
        QuickBooks to answer the repeat once. ``retry_unanswered=False`` leaves that to the
        caller: a create that can be looked up first (:mod:`connectors.quickbooks.creates`).
        """
        params = {"requestid": request_id, "operation": operation, "include": include}
        payload = await self.request("POST", entity.lower(), params=params, body=body,
                                     idempotent=request_id is not None and retry_unanswered)
        record: dict[str, Any] = payload[entity]
        return record

    async def query_page(self, sql: str) -> dict[str, Any]:
        """One query page: the ``QueryResponse`` object (empty dict when nothing matched).

        An identical query already in flight answers it, unless a write ended since that one
        was asked (:mod:`connectors.quickbooks.shared_reads`)."""

        async def ask() -> dict[str, Any]:
            payload = await self.request("GET", "query", params={"query": sql})
            page: dict[str, Any] = payload.get("QueryResponse") or {}
            return page

        return await self.shared_pages.page(sql, ask)

    async def query(self, sql: str, *, limit: int | None = None,
                    page_size: int = MAX_PAGE) -> AsyncIterator[dict[str, Any]]:
        """Every row of a select, paging with STARTPOSITION/MAXRESULTS until a short page."""
        entity = query_entity(sql)
        page_size = max(1, min(page_size, MAX_PAGE))
        start, seen = 1, 0
        while limit is None or seen < limit:
            size = page_size if limit is None else min(page_size, limit - seen)
            page = await self.query_page(page_query(sql, start, size))
            rows = page.get(entity) or []
            for row in rows:
                yield row
            seen += len(rows)
            if len(rows) < size:
                return
            start += len(rows)

    async def batch(self, items: Sequence[Mapping[str, Any]], *, request_id: str | None = None,
                    retry_unanswered: bool = True) -> list[dict[str, Any]]:
        """One ``POST /batch`` of at most 30 items; the raw ``BatchItemResponse`` list.

        Spends one batch call and one request per item of the realm's budgets. As for
        :meth:`write`, ``retry_unanswered=False`` keeps the HTTP layer from sending it again after
        a lost answer: creates that are looked up first (:mod:`connectors.quickbooks.batched`).
        """
        payload = await self.request("POST", "batch", params={"requestid": request_id},
                                     body={"BatchItemRequest": list(items)},
                                     idempotent=request_id is not None and retry_unanswered,
                                     metered=len(items))
        return list(payload.get("BatchItemResponse") or [])

    async def cdc(self, entities: Sequence[str], changed_since: str) -> dict[str, list[dict[str, Any]]]:
        """Changed (and deleted) objects per entity since a timestamp (at most 30 days back)."""
        payload = await self.request("GET", "cdc", params={"entities": ",".join(entities),
                                                           "changedSince": changed_since})
        out: dict[str, list[dict[str, Any]]] = {name: [] for name in entities}
        for response in payload.get("CDCResponse") or []:
            for group in response.get("QueryResponse") or []:
                for name, rows in group.items():
                    if isinstance(rows, list):
                        out.setdefault(name, []).extend(rows)
        return out

    async def probe_auth(self) -> None:
        """``AuthProbe`` for ``/ready``: a stored reconnect alert fails at once (the refresh token
        is dead until someone reconnects the company); otherwise one ``companyinfo`` read, which
        needs a valid access token and refreshes it when it expired."""
        alert = await self.store.get(ALERTS_NAMESPACE, self.realm_id)
        if alert:
            reason = alert.get("reason") if isinstance(alert, Mapping) else None
            raise quickbooks_error("RECONNECT_REQUIRED", "the company must be reconnected (splice "
                                   f"quickbooks-connect){': ' + str(reason) if reason else ''}")
        await self.request("GET", f"companyinfo/{self.realm_id}")

    async def status(self) -> dict[str, Any]:
        """Realm, token expiry, requests used this minute, and a pending reconnect alert."""
        token = await self.tokens.stored()
        alert = await self.store.get(ALERTS_NAMESPACE, self.realm_id)
        out: dict[str, Any] = {
            "realmId": self.realm_id,
            "baseUrl": self.settings.base_url,
            "accessTokenExpiresAt": token.expires_at if token else None,
            "refreshTokenExpiresAt": token.extra.get("refresh_token_expires_at") if token else None,
            "refreshTokenHardExpiresAt": (token.extra.get("refresh_token_hard_expires_at")
                                          if token else None),
            "requestsLastMinute": self.limits.used_last_minute(),
            "refreshes": self.tokens.refresh_count,
        }
        if alert:
            out["reconnectRequired"] = alert.get("reason", True)
        return out


def _is_unauthorized(response: httpx.Response) -> bool:
    return response.status_code == 401


@asynccontextmanager
async def open_connection(settings: Mapping[str, Any],
                          ctx: ConnectionContext) -> AsyncIterator[QuickBooksClient]:
    """``ConnectionSpec.open``: the connection's client, closed when the runtime stops."""
    qb = QuickBooksSettings.from_mapping(settings)
    limits = ctx.shared(_realm_key(qb), lambda: realm_limits(qb, ctx.budget))
    token_http = ctx.create_http_client(timeout=qb.timeout, retry=RetryOptions(attempts=2))
    fetcher = RefreshTokenFetcher(qb, token_http, ctx.store, ctx.logger)
    tokens = StoredTokenSource(ctx.store, token_key(qb.realm_id), fetcher)
    on_throttle = limits.general.pause  # every replica stops, when the budget is shared
    http = ctx.create_http_client(
        base_url=qb.base_url,
        auth=OAuth2Auth(tokens, is_unauthorized=_is_unauthorized),
        timeout=qb.timeout,
        rate_limit=limits.pick,
        retry=RetryOptions(attempts=3, initial_delay=qb.retry_delay, max_delay=30.0),
        max_connections=max(qb.max_concurrent, 1),
        on_throttle=on_throttle,
    )
    client = QuickBooksClient(qb, http, tokens, limits, ctx.store, ctx.resources.metrics)
    try:
        yield client
    finally:
        with anyio.CancelScope(shield=True):
            await http.aclose()
            await token_http.aclose()

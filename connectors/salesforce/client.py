"""``SalesforceClient``: the connection object operations and sources receive as ``ctx.connection``.

It speaks the REST API of one org through the runtime's layered HTTP client (OAuth, retry, tracing,
rate limit), learns the instance URL from the token response, reads the daily API usage from every
``Sforce-Limit-Info`` header, and turns non-2xx answers into ``SALESFORCE:*`` errors. Query results
are streamed page by page, so a million-row query never sits in memory.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import quote as url_quote

import anyio
import httpx
from opentelemetry import metrics

from connectors.salesforce.auth import create_token_fetcher
from connectors.salesforce.config import SalesforceSettings
from connectors.salesforce.echoes import OwnWrites
from connectors.salesforce.errors import SalesforceError, error_from_response, is_session_expired
from runtime import (
    IDEMPOTENT_EXTENSION,
    UNLIMITED_EXTENSION,
    ConnectionContext,
    HttpError,
    OAuth2Auth,
    OperationContext,
    RetryOptions,
    StoredTokenSource,
    backoff_delay,
    map_http_errors,
)

__all__ = ["ApiUsageGauges", "QueryStream", "SalesforceClient", "client_of", "writable_fields"]

_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The JSON object a successful REST call answers with (the API documents these as objects)."""
    return cast(dict[str, Any], response.json())


class ApiUsageGauges:
    """Daily API usage of a runtime's Salesforce connections as two observable gauges.

    One per runtime (``ctx.shared``), on the runtime's own meter: the gauges report the connections
    of that runtime only, and a second runtime in the process gets gauges of its own.
    """

    def __init__(self, meter: metrics.Meter) -> None:
        self._clients: weakref.WeakSet[SalesforceClient] = weakref.WeakSet()
        meter.create_observable_gauge("splice.salesforce.api_requests.used", [self._observe("used")],
                                      unit="{request}", description="Daily API requests used (24 h)")
        meter.create_observable_gauge("splice.salesforce.api_requests.max", [self._observe("max")],
                                      unit="{request}", description="Daily API request allocation")

    def add(self, client: SalesforceClient) -> None:
        """Report ``client``'s usage from now on."""
        self._clients.add(client)

    def discard(self, client: SalesforceClient) -> None:
        """Stop reporting ``client`` (it closed)."""
        self._clients.discard(client)

    def _observe(self, kind: str) -> Callable[[metrics.CallbackOptions], list[metrics.Observation]]:
        def callback(_options: metrics.CallbackOptions) -> list[metrics.Observation]:
            out = []
            for client in list(self._clients):
                if client.api_usage is not None:
                    used, maximum = client.api_usage
                    out.append(metrics.Observation(used if kind == "used" else maximum,
                                                   {"splice.connection": client.name}))
            return out
        return callback


class QueryStream:
    """The records of one SOQL query; the first page is already fetched, the rest on demand."""

    def __init__(self, client: SalesforceClient, first_page: dict[str, Any]) -> None:
        self._client = client
        self._page: dict[str, Any] | None = first_page
        self.total_size: int = int(first_page.get("totalSize", 0))

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._records()

    async def _records(self) -> AsyncIterator[dict[str, Any]]:
        page, self._page = self._page, None
        while page is not None:
            for record in page.get("records") or ():
                yield record
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = (await self._client.request("GET", next_url, context="query more")).json()


class SalesforceClient:
    """One org's REST API for one configured connection."""

    def __init__(self, settings: SalesforceSettings, ctx: ConnectionContext) -> None:
        self.settings = settings
        self.name = ctx.name
        self.logger = ctx.logger
        self._login_http = ctx.create_http_client(
            base_url=settings.login_url, timeout=settings.timeout,
            retry=RetryOptions(attempts=2), headers={"Accept": "application/json"})
        self.tokens = StoredTokenSource(ctx.store, settings.token_key,
                                        create_token_fetcher(settings, lambda: self._login_http))
        # One budget per org (its instance, or the login and app it is reached through), a
        # resource of the runtime: replicas sharing a PostgreSQL store keep to it together.
        org = settings.instance_url or f"{settings.login_url}:{settings.client_id}:{settings.username or ''}"
        self.rate_limit = ctx.budget(f"salesforce:{org}", settings.requests_per_second, 1.0,
                                     max_concurrent=settings.max_concurrency)
        self.http = ctx.create_http_client(
            auth=OAuth2Auth(self.tokens, is_unauthorized=is_session_expired),
            timeout=settings.timeout, rate_limit=self.rate_limit,
            retry=RetryOptions(attempts=settings.retries, initial_delay=settings.retry_delay),
            headers={"Accept": "application/json",
                     "Sforce-Call-Options": f"client={settings.client_name}"})
        #: What this connection wrote to which record: polled triggers tell their echoes by it.
        self.own_writes = OwnWrites()
        #: (used, max) from the last ``Sforce-Limit-Info`` header seen.
        self.api_usage: tuple[int, int] | None = None
        self._describes: dict[str, dict[str, Any]] = {}
        self._gauges = ctx.shared("salesforce.api-usage-gauges",
                                  lambda: ApiUsageGauges(ctx.resources.meter))
        self._gauges.add(self)

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def base_path(self) -> str:
        """``/services/data/vNN.N``."""
        return f"/services/data/v{self.settings.api_version}"

    async def instance_url(self) -> str:
        """Where data calls go: the configured instance URL or the token response's."""
        if self.settings.instance_url:
            return self.settings.instance_url
        token = await self.tokens.token()
        url = token.extra.get("instance_url")
        if not url:
            raise SalesforceError("token response carried no instance_url; set instance-url",
                                  error_type="SALESFORCE:AUTHENTICATION")
        return str(url).rstrip("/")

    @contextmanager
    def _deadline(self, timeout: float) -> Iterator[None]:
        # The transport retries inside this window; the deadline bounds the whole call.
        try:
            with map_http_errors("SALESFORCE"), anyio.fail_after(timeout * (self.settings.retries + 1) + 5):
                yield
        except HttpError as error:
            raise SalesforceError(error.message, error_type=error.error_type, retryable=error.retryable) from None
        except TimeoutError:
            raise SalesforceError("request did not finish in time", error_type="SALESFORCE:TIMEOUT",
                                  retryable=True) from None

    def _note_limits(self, response: httpx.Response) -> None:
        header = response.headers.get("Sforce-Limit-Info")
        match = _USAGE.search(header) if header else None
        if match:
            self.api_usage = (int(match.group(1)), int(match.group(2)))

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      json: Any = None, headers: Mapping[str, str] | None = None,
                      idempotent: bool = False, ok: tuple[int, ...] = (),
                      retry_locks: bool = False, read_timeout: float | None = None,
                      unlimited: bool = False, context: str = "") -> httpx.Response:
        """Send one call to the instance; raise ``SALESFORCE:*`` unless 2xx or in ``ok``.

        ``path`` is a path on the instance (``/services/data/...``, a ``nextRecordsUrl``). With
        ``retry_locks`` a write refused with ``UNABLE_TO_LOCK_ROW`` (nothing was written) is sent
        again after a jittered pause, up to ``lock-retries`` times. ``read_timeout`` replaces the
        connection's per-request timeout (CometD long polls hold the request open for minutes);
        ``unlimited`` keeps such a long poll from holding one of the rate limit's concurrency slots.
        """
        url = path if path.startswith("http") else await self.instance_url() + path
        extensions: dict[str, Any] = {}
        if idempotent:
            extensions[IDEMPOTENT_EXTENSION] = True
        if unlimited:
            extensions[UNLIMITED_EXTENSION] = True
        attempt = 0
        while True:
            attempt += 1
            limit = read_timeout or self.settings.timeout
            with self._deadline(limit):
                response = await self.http.request(method, url, params=params, json=json, headers=headers,
                                                   extensions=extensions or None,
                                                   timeout=httpx.Timeout(limit) if read_timeout else httpx.USE_CLIENT_DEFAULT)
            self._note_limits(response)
            if response.status_code < 300 or response.status_code in ok:
                return response
            error = error_from_response(response, context=context)
            if (retry_locks and error.kind == "UNABLE_TO_LOCK_ROW"
                    and attempt <= self.settings.lock_retries):
                await anyio.sleep(backoff_delay(attempt, initial=self.settings.retry_delay, maximum=5.0))
                continue
            raise error

    def data(self, suffix: str) -> str:
        """A path under ``/services/data/vNN.N/``."""
        return f"{self.base_path}/{suffix.lstrip('/')}"

    # -- reads --------------------------------------------------------------------------------

    async def query(self, soql: str, *, include_deleted: bool = False,
                    batch_size: int | None = None) -> QueryStream:
        """Run SOQL; the first page is fetched now (so bad SOQL fails here), the rest lazily."""
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"} if batch_size else None
        resource = "queryAll" if include_deleted else "query"
        response = await self.request("GET", self.data(resource), params={"q": soql},
                                      headers=headers, context="query")
        return QueryStream(self, response.json())

    async def get(self, sobject: str, record_id: str, fields: list[str] | None = None) -> dict[str, Any]:
        """One record by Id."""
        params = {"fields": ",".join(fields)} if fields else None
        path = self.data(f"sobjects/{sobject}/{url_quote(record_id, safe='')}")
        return _json_object(await self.request("GET", path, params=params, context=f"get {sobject}"))

    async def get_by_external_id(self, sobject: str, field: str, value: str,
                                 fields: list[str] | None = None) -> dict[str, Any]:
        """One record by an external id field."""
        params = {"fields": ",".join(fields)} if fields else None
        path = self.data(f"sobjects/{sobject}/{field}/{url_quote(str(value), safe='')}")
        return _json_object(await self.request("GET", path, params=params, context=f"get {sobject}"))

    async def describe(self, sobject: str) -> dict[str, Any]:
        """The object's describe (cached for the connection's lifetime)."""
        if sobject not in self._describes:
            response = await self.request("GET", self.data(f"sobjects/{sobject}/describe"),
                                          context=f"describe {sobject}")
            self._describes[sobject] = _json_object(response)
        return self._describes[sobject]

    async def limits(self) -> dict[str, Any]:
        """The org's ``/limits`` resource."""
        return _json_object(await self.request("GET", self.data("limits"), context="limits"))

    # -- writes -------------------------------------------------------------------------------

    async def create(self, sobject: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Insert one record; returns ``{"id", "success", "errors"}``.

        Not sent again after a timeout or a 5xx (Salesforce has no request id to make a repeat
        harmless, and a plain insert has no key to look up): it fails, and a flow that must create
        once uses :meth:`upsert` by an external id instead. The shipped flows create nothing in
        Salesforce; they update records by Id.
        """
        body = writable_fields(record, drop=("Id",))
        response = await self.request("POST", self.data(f"sobjects/{sobject}"), json=body,
                                      retry_locks=True, context=f"create {sobject}")
        return _json_object(response)

    async def update(self, sobject: str, record_id: str, record: Mapping[str, Any]) -> None:
        """Update one record (204)."""
        path = self.data(f"sobjects/{sobject}/{url_quote(record_id, safe='')}")
        body = writable_fields(record, drop=("Id",))
        await self.request("PATCH", path, json=body, idempotent=True, retry_locks=True,
                           context=f"update {sobject}")
        self.own_writes.record(sobject, record_id, body)

    async def upsert(self, sobject: str, field: str, value: Any,
                     record: Mapping[str, Any]) -> dict[str, Any]:
        """Insert or update by external id; 201, 200 and 204 all end as ``{"id", "created"}``.

        Idempotent by nature: a repeat after a lost answer finds the record the first call made by
        its external id and updates it to the same values, so no lookup is needed before it is sent
        again (the HTTP layer retries it after a timeout or a 5xx). Several matches (300) raise
        ``SALESFORCE:MULTIPLE_MATCHES`` with the matching ids.
        """
        path = self.data(f"sobjects/{sobject}/{field}/{url_quote(str(value), safe='')}")
        sent = writable_fields(record, drop=("Id", field))
        response = await self.request("PATCH", path, json=sent, idempotent=True, retry_locks=True,
                                      context=f"upsert {sobject}")
        if response.status_code == 204 or not response.content:
            found = await self.get_by_external_id(sobject, field, value, ["Id"])
            body: dict[str, Any] = {"id": found.get("Id"), "success": True, "errors": [],
                                    "created": False}
        else:
            body = _json_object(response)
            body.setdefault("created", response.status_code == 201)
        if body.get("id") and not body.get("created"):
            self.own_writes.record(sobject, str(body["id"]), {**sent, field: value})
        return body

    async def delete(self, sobject: str, record_id: str) -> None:
        """Delete one record (204)."""
        path = self.data(f"sobjects/{sobject}/{url_quote(record_id, safe='')}")
        await self.request("DELETE", path, retry_locks=True, context=f"delete {sobject}")

    async def probe_auth(self) -> None:
        """``AuthProbe`` for ``/ready``: one ``/limits`` read, the cheapest call that needs a valid
        session (logging in again when it expired); it refreshes the reported API usage too."""
        limits = (await self.limits()).get("DailyApiRequests") or {}
        if "Max" in limits:
            self.api_usage = (int(limits["Max"]) - int(limits.get("Remaining", 0)), int(limits["Max"]))

    async def status(self) -> dict[str, Any]:
        """Shown by ``splice status`` and ``/health``: daily API usage from ``Sforce-Limit-Info``.

        Before the connection made any call (a fresh ``splice status`` process), one ``/limits``
        call fetches it; afterwards the last header seen is reported without calling Salesforce.
        """
        out: dict[str, Any] = {"api_version": self.settings.api_version, "auth": self.settings.auth}
        if self.api_usage is None:
            try:
                limits = (await self.limits()).get("DailyApiRequests") or {}
                if self.api_usage is None and "Max" in limits:
                    self.api_usage = (int(limits["Max"]) - int(limits.get("Remaining", 0)), int(limits["Max"]))
            except SalesforceError as error:
                out["error"] = error.to_dict()
        if self.api_usage is not None:
            used, maximum = self.api_usage
            out["api_usage"] = {"used": used, "max": maximum, "remaining": max(0, maximum - used)}
        return out

    async def aclose(self) -> None:
        """Close both HTTP clients (and stop reporting this connection's usage)."""
        self._gauges.discard(self)
        await self.http.aclose()
        await self._login_http.aclose()


def writable_fields(record: Mapping[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A record body without ``attributes`` and the keys Salesforce refuses in that position."""
    return {k: v for k, v in record.items() if k != "attributes" and k not in drop}


def client_of(ctx: OperationContext) -> SalesforceClient:
    """The Salesforce client an operation was given, or ``SALESFORCE:CONNECTION`` for another kind."""
    client = ctx.connection
    if not isinstance(client, SalesforceClient):
        raise SalesforceError("salesforce operations need a salesforce connection",
                              error_type="SALESFORCE:CONNECTION")
    return client

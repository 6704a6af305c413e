"""The layered HTTP stack every connector uses.

Policy lives in transport wrappers, I/O in the innermost transport, so connector code only builds
requests and reads responses::

    httpx.AsyncClient(auth=OAuth2Auth)        refresh before expiry / on 401, then replay
      └─ RetryTransport                       429/503 and transport faults; Retry-After; jitter
           └─ TracingTransport                one client span per attempt
                └─ MeteredTransport           requests counted per attempt, by status (metrics)
                     └─ RateLimitTransport    per-account requests/period and concurrency;
                                              the wait for a slot is measured (metrics)
                          └─ BearerTransport  the OAuth token put on each attempt once it has
                                              its slot (a token taken before the wait may expire)
                     └─ network transport     pooled connections, TLS verify on (aiohttp's engine
                                              when installed, else httpx's own; or an
                                              ASGITransport in tests: an emulator in process)

:func:`create_http_client` builds the stack; a test passes ``transport=`` to swap the innermost layer.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from runtime.limits import RateLimit
from runtime.logcontext import CURRENT_OPERATION
from runtime.oauth import AUTH_EXTENSION, OAuth2Auth
from runtime.redaction import redact
from runtime.retry import backoff_delay, parse_retry_after

if TYPE_CHECKING:
    from runtime.metrics import RuntimeMetrics

__all__ = [
    "BearerTransport",
    "DEFAULT_RETRY",
    "IDEMPOTENT_EXTENSION",
    "MeteredTransport",
    "RateLimitTransport",
    "RetryOptions",
    "RetryTransport",
    "TracingTransport",
    "UNLIMITED_EXTENSION",
    "create_http_client",
    "create_network_transport",
]

#: Set ``request.extensions[IDEMPOTENT_EXTENSION] = True`` on a POST that carries an idempotency key
#: (QuickBooks ``requestid``, an upsert by external id): it may then be retried after a 5xx or timeout.
IDEMPOTENT_EXTENSION = "splice.idempotent"
#: Set ``request.extensions[UNLIMITED_EXTENSION] = True`` on a request that must not hold a rate-limit
#: slot: a streaming long poll (CometD) stays open for minutes and would starve ordinary calls.
UNLIMITED_EXTENSION = "splice.unlimited"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class RetryOptions:
    """When and how the transport retries by itself (before the flow's ``on-error`` sees anything)."""

    attempts: int = 3
    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    #: Statuses that mean "not processed, come back later": safe for any method.
    not_processed: frozenset[int] = frozenset({429, 503})
    #: Statuses retried only for idempotent requests.
    transient: frozenset[int] = frozenset({500, 502, 504})
    #: Longest ``Retry-After`` honoured inside the transport; longer ones surface as errors whose
    #: ``retry_after`` the flow's retry policy honours instead.
    max_retry_after: float = 60.0
    #: How long a 429 without ``Retry-After`` pauses the whole account (``on_throttle``): APIs such
    #: as QuickBooks document a wait but do not send the header. ``None``: the first backoff delay.
    throttle_pause: float | None = None


#: The retry behaviour a connection gets unless it asks for another.
DEFAULT_RETRY = RetryOptions()


def _is_idempotent(request: httpx.Request) -> bool:
    return request.method in _SAFE_METHODS or bool(request.extensions.get(IDEMPOTENT_EXTENSION))


class RetryTransport(httpx.AsyncBaseTransport):
    """Retries what the server did not process, and transient faults of idempotent requests."""

    def __init__(self, inner: httpx.AsyncBaseTransport, options: RetryOptions | None = None, *,
                 sleep: Callable[[float], Any] = anyio.sleep,
                 on_throttle: Callable[[float], Awaitable[None] | None] | None = None) -> None:
        self.inner = inner
        self.options = options or RetryOptions()
        self._sleep = sleep
        self._on_throttle = on_throttle

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        opts = self.options
        attempt = 0
        while True:
            attempt += 1
            last = attempt > opts.attempts
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.ConnectError:
                # Never reached the server: safe to send again whatever the method.
                if last:
                    raise
                await self._sleep(self._delay(attempt, None))
                continue
            except httpx.TimeoutException:
                if last or not _is_idempotent(request):
                    raise
                await self._sleep(self._delay(attempt, None))
                continue
            status = response.status_code
            retry = status in opts.not_processed or (
                status in opts.transient and _is_idempotent(request))
            if not retry or last:
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None and retry_after > opts.max_retry_after:
                return response
            if status == 429 and self._on_throttle is not None:
                paused = self._on_throttle(retry_after or opts.throttle_pause or opts.initial_delay)
                if inspect.isawaitable(paused):  # a budget shared by replicas tells them first
                    await paused
            await response.aread()
            await response.aclose()
            await self._sleep(self._delay(attempt, retry_after))

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        o = self.options
        return backoff_delay(attempt, initial=o.initial_delay, multiplier=o.multiplier,
                             maximum=o.max_delay, jitter=o.jitter, retry_after=retry_after)

    async def aclose(self) -> None:
        await self.inner.aclose()


class RateLimitTransport(httpx.AsyncBaseTransport):
    """Waits for a slot of a :class:`RateLimit` before each request.

    ``pick`` chooses the limit per request (e.g. QuickBooks' separate batch budget); it returns
    ``None`` for requests that are not limited.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport,
                 pick: RateLimit | Callable[[httpx.Request], RateLimit | None], *,
                 on_wait: Callable[[float], None] | None = None) -> None:
        self.inner = inner
        self._pick = pick if callable(pick) else (lambda _request: pick)
        #: Told how long each request waited for its slot (metrics; API budget alerts).
        self._on_wait = on_wait

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        limit = None if request.extensions.get(UNLIMITED_EXTENSION) else self._pick(request)
        if limit is None:
            return await self.inner.handle_async_request(request)
        asked = time.perf_counter()
        async with limit.slot():
            if self._on_wait is not None:
                self._on_wait(time.perf_counter() - asked)
            response = await self.inner.handle_async_request(request)
            # Read while holding the slot: the concurrency bound counts requests until answered.
            await response.aread()
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class BearerTransport(httpx.AsyncBaseTransport):
    """Puts the OAuth token on each attempt right before it goes out (below the rate limiter and
    the retry pauses), from the :class:`~runtime.oauth.OAuth2Auth` that authorizes the request."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        auth = request.extensions.get(AUTH_EXTENSION)
        if isinstance(auth, OAuth2Auth):
            await auth.attach(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _safe_url(url: httpx.URL) -> str:
    """Scheme, host and path only: query strings may carry tokens or customer data."""
    return redact(str(url.copy_with(query=None, fragment=None)))


class TracingTransport(httpx.AsyncBaseTransport):
    """One ``CLIENT`` span per HTTP attempt, child of the step span that made the call."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, connector: str,
                 tracer: trace.Tracer | None = None) -> None:
        self.inner = inner
        self.connector = connector
        self._tracer = tracer or trace.get_tracer("splice")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attributes = {
            "http.request.method": request.method,
            "url.full": _safe_url(request.url),
            "server.address": request.url.host,
            "splice.connector": self.connector,
        }
        with self._tracer.start_as_current_span(
            f"{request.method} {request.url.path}", kind=SpanKind.CLIENT, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.HTTPError as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.set_attribute("error.type", str(response.status_code))
                span.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class MeteredTransport(httpx.AsyncBaseTransport):
    """Counts each HTTP attempt of a connector by operation (the step or trigger it is made for),
    method and status (or transport error) in the runtime's metrics:
    ``splice_connector_requests_total``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, connector: str,
                 metrics: RuntimeMetrics) -> None:
        self.inner = inner
        self.connector = connector
        self._metrics = metrics

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.HTTPError as exc:
            self._metrics.request_finished(self.connector, CURRENT_OPERATION.get(), request.method,
                                           type(exc).__name__)
            raise
        self._metrics.request_finished(self.connector, CURRENT_OPERATION.get(), request.method,
                                       str(response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def create_network_transport(*, verify: bool = True, max_connections: int = 20
                             ) -> httpx.AsyncBaseTransport:
    """The innermost layer: real sockets, pooled keep-alive connections.

    httpx's own connection pool costs about 1 ms of CPU per request and degrades with concurrency
    (2.3 ms per request at 32 in flight on the 2-core benchmark machine); aiohttp's connection engine
    behind httpx's API (``httpx-aiohttp``) costs about 0.4 ms. It is used when installed (the
    ``fast`` extra) unless ``SPLICE_HTTP_TRANSPORT=httpx``; everything above this layer is the same.
    """
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_connections)
    if os.environ.get("SPLICE_HTTP_TRANSPORT", "auto") != "httpx":
        try:
            from httpx_aiohttp import AiohttpTransport
        except ImportError:
            pass
        else:
            return AiohttpTransport(verify=verify, limits=limits)
    return httpx.AsyncHTTPTransport(verify=verify, limits=limits, retries=0)


def create_http_client(
    connector: str,
    *,
    base_url: str = "",
    auth: httpx.Auth | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    verify: bool = True,
    retry: RetryOptions | None = DEFAULT_RETRY,
    rate_limit: RateLimit | Callable[[httpx.Request], RateLimit | None] | None = None,
    max_connections: int = 20,
    transport: httpx.AsyncBaseTransport | None = None,
    tracer: trace.Tracer | None = None,
    on_throttle: Callable[[float], Awaitable[None] | None] | None = None,
    metrics: RuntimeMetrics | None = None,
) -> httpx.AsyncClient:
    """One pooled ``httpx.AsyncClient`` for one connection, with the layers above.

    ``transport`` replaces the network (an emulator's ``httpx.ASGITransport`` in tests). TLS
    verification is on unless ``verify=False`` is asked for explicitly. With ``metrics`` (the
    runtime's), requests, rate-limit waits and token failures of an :class:`OAuth2Auth` are counted.
    """
    layer: httpx.AsyncBaseTransport = transport or create_network_transport(
        verify=verify, max_connections=max_connections)
    if isinstance(auth, OAuth2Auth):
        layer = BearerTransport(layer)
    if rate_limit is not None:
        on_wait = None
        if metrics is not None:
            meter = metrics

            def on_wait(seconds: float) -> None:
                meter.rate_limit_waited(connector, seconds)

        layer = RateLimitTransport(layer, rate_limit, on_wait=on_wait)
    if metrics is not None:
        layer = MeteredTransport(layer, connector=connector, metrics=metrics)
        if isinstance(auth, OAuth2Auth):
            auth.observe(connector, metrics)
    if not isinstance(tracer, trace.NoOpTracer):  # tracing off: no span, no per-call attributes
        layer = TracingTransport(layer, connector=connector, tracer=tracer)
    if retry is not None:
        layer = RetryTransport(layer, retry, on_throttle=on_throttle)
    return httpx.AsyncClient(
        base_url=base_url,
        auth=auth,
        headers=dict(headers or {}),
        timeout=httpx.Timeout(timeout),
        transport=layer,
        follow_redirects=False,
    )

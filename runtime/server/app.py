"""The ASGI app of ``splice serve``: health, readiness, and every route the flows' triggers register.

``/health`` is liveness (the process answers); ``/ready`` says whether this server can do its work:
the store answers and accepts writes, every trigger runs and every connection can authenticate,
with a JSON body naming what is not ready; ``/metrics``
is the runtime's Prometheus metrics.

The app serves an already opened :class:`runtime.service.SpliceRuntime` (so start-up problems are
reported before any server starts). Its lifespan starts every trigger and, on shutdown (SIGTERM
through uvicorn), stops the triggers and lets in-flight executions finish within the drain timeout.
Requests to trigger routes pass the API policies first.

Every answer is JSON, whatever goes wrong: a body that does not arrive in full within
``settings.server.body-timeout`` is a 408, one larger than ``settings.server.max-body-size`` a 413,
and a request still in flight when the drain deadline passes (:meth:`SpliceApp.begin_shutdown`)
is stopped and answered 503, so its sender knows to try again.

It is a plain ASGI callable rather than a web framework's app: it does one thing (hand a request to
the route a trigger registered), and on the hot path of a listener flow every layer shows up in the
messages per second.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import anyio

from dsl import parse_duration
from runtime.context import HttpRequest, HttpResponse
from runtime.errors import ConfigurationError
from runtime.jsonutil import dumps_bytes
from runtime.server.admin import ADMIN_PREFIX, AdminApi, admin_key
from runtime.server.console import CONSOLE_PREFIX, Console
from runtime.server.policies import Policy, build_policies, check_policies
from runtime.server.readiness import Readiness
from runtime.service import SpliceRuntime
from runtime.store.base import StoreUnavailableError

__all__ = ["SpliceApp", "create_app"]

logger = logging.getLogger("splice.server")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


#: Seconds a request's body gets to arrive in full (``settings.server.body-timeout``).
BODY_TIMEOUT = 30.0
#: The largest request body in bytes (``settings.server.max-body-size``).
MAX_BODY_SIZE = 10 * 1024 * 1024


def _error(status: int, kind: str, message: str) -> HttpResponse:
    return HttpResponse(status, {"error": {"type": kind, "message": message}})


class _Refused(Exception):
    """A request answered before it reached its handler (its body came too slowly or too big)."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status)
        self.response = response


def _closing(status: int, kind: str, message: str) -> _Refused:
    """A refusal that also closes the connection: the rest of the body is not read."""
    response = _error(status, kind, message)
    response.headers["connection"] = "close"
    return _Refused(response)


def body_limits(server: Mapping[str, Any]) -> tuple[float, int]:
    """``(body-timeout seconds, max-body-size bytes)`` from ``settings.server``.

    Raises:
        ConfigurationError: a value that is not a positive duration / number of bytes.
    """
    try:
        timeout = parse_duration(server.get("body-timeout", BODY_TIMEOUT))
    except ValueError as exc:
        raise ConfigurationError(f"settings.server.body-timeout: {exc}") from None
    size = server.get("max-body-size", MAX_BODY_SIZE)
    if timeout <= 0:
        raise ConfigurationError("settings.server.body-timeout must be positive")
    if type(size) is not int or size <= 0:
        raise ConfigurationError(f"settings.server.max-body-size must be a positive number of "
                                 f"bytes, not {size!r}")
    return timeout, size


class SpliceApp:
    """ASGI app: ``/health``, ``/ready``, ``/sandbox`` and the trigger routes of an open runtime."""

    def __init__(self, runtime: SpliceRuntime, *, drain_timeout: float = 30.0,
                 on_ready: Callable[[SpliceRuntime], Any] | None = None,
                 sandbox: Mapping[str, Any] | None = None, store_timeout: float = 2.0) -> None:
        self.runtime = runtime
        #: What ``/ready`` checks; the store and each connection get ``store_timeout`` seconds.
        self.readiness = Readiness(runtime, store_timeout=store_timeout)
        #: What ``GET /sandbox`` answers in sandbox mode (emulator URLs, demo credentials).
        self.sandbox = sandbox
        self.drain_timeout = drain_timeout
        self.on_ready = on_ready
        self.ready = False
        self.policies: list[Policy] = build_policies(
            runtime.project.settings.server.get("policies"), store=runtime.store)
        self.body_timeout, self.max_body_size = body_limits(runtime.project.settings.server)
        #: When requests in flight are stopped (``anyio.current_time()``; infinite until shutdown).
        self._deadline = math.inf
        self._in_flight: set[anyio.CancelScope] = set()
        #: ``/admin/...`` (executions, dead letters, status), with its own authentication.
        self.admin = AdminApi(runtime, key=admin_key(runtime.project.settings.server),
                              sandbox=sandbox)
        #: ``/console...``: the monitoring console's pages over the admin API, with its own login.
        self.console = Console(self.admin, runtime.project.settings.server, sandbox=sandbox is not None)

    # -- lifespan ----------------------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """The server stops accepting connections: from now on the drain timeout runs.

        The triggers are asked to stop at once (their in-flight executions drain meanwhile) and
        requests in flight get until the deadline, then are stopped and answered 503; the
        lifespan's drain waits only for what is left of the same deadline. Called once the stop
        is requested (:mod:`runtime.server.serving`); leaving the lifespan without it drains for
        the whole timeout.
        """
        if self._deadline != math.inf:
            return
        self.ready = False
        self._deadline = anyio.current_time() + self.drain_timeout
        for scope in self._in_flight:
            scope.deadline = self._deadline
        logger.info("shutting down: stopping triggers, draining in-flight requests and executions "
                    "(%g s)", self.drain_timeout)
        self.runtime.request_stop()

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Triggers run while inside; leaving stops them and drains in-flight executions."""
        runtime = self.runtime
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run_triggers)
            self.ready = True
            if self.on_ready is not None:
                self.on_ready(runtime)
            try:
                yield
            finally:
                self.ready = False
                left = self.drain_timeout
                if self._deadline == math.inf:
                    logger.info("shutting down: stopping triggers, draining in-flight executions")
                else:
                    left = max(0.0, self._deadline - anyio.current_time())
                if not await runtime.drain(left):
                    _give_up_waiting(runtime)
                    tg.cancel_scope.cancel()

    async def _lifespan_protocol(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        started = False
        try:
            async with self.lifespan():
                started = True
                await send({"type": "lifespan.startup.complete"})
                while (await receive())["type"] != "lifespan.shutdown":
                    pass
        except Exception as exc:  # reported by the server as a failed start or stop
            logger.error("server lifespan failed: %s: %s", type(exc).__name__, exc)
            kind = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": kind, "message": f"{type(exc).__name__}: {exc}"})
            return
        await send({"type": "lifespan.shutdown.complete"})

    # -- requests ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan_protocol(receive, send)
            return
        if kind != "http":
            return
        response: HttpResponse | None = None
        with anyio.CancelScope(deadline=self._deadline) as in_flight:
            self._in_flight.add(in_flight)
            try:
                response = await self._handle(scope, receive)
            except _Refused as refused:
                response = refused.response
            except Exception as exc:  # never a traceback to the caller, nor a plain-text 500
                logger.exception("%s %s failed", scope["method"], scope["path"])
                response = _error(500, "SERVER:INTERNAL", f"internal error ({type(exc).__name__})")
            finally:
                self._in_flight.discard(in_flight)
        if response is None:  # stopped at the drain deadline
            response = _error(503, "SERVER:SHUTTING_DOWN", "the server is shutting down and "
                              "stopped this request at its drain deadline; send it again")
            response.headers.update({"retry-after": "5", "connection": "close"})
        await self._send(send, response, head=scope["method"] == "HEAD")

    async def _handle(self, scope: Scope, receive: Receive) -> HttpResponse:
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/health" and method == "GET":
            return HttpResponse(200, {"status": "ok", "flows": len(self.runtime.project.flows),
                                      "connections": await self.runtime.status()})
        if path == "/ready" and method == "GET":
            return await self._readiness()
        if path == "/metrics" and method == "GET":
            return self._metrics()
        if path == "/sandbox" and method == "GET":
            if self.sandbox is None:
                return _error(404, "SERVER:NOT_SANDBOX", "splice serve is not in sandbox mode")
            return HttpResponse(200, dict(self.sandbox))
        if path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/"):
            request = await self._request(scope, receive, {})
            if request is None:
                return _error(499, "SERVER:CLIENT_GONE", "the client went away")
            server = scope.get("server")
            return await self.console.handle(request, server_host=server[0] if server else None)
        if path.startswith(ADMIN_PREFIX):
            request = await self._request(scope, receive, {})
            if request is None:
                return _error(499, "SERVER:CLIENT_GONE", "the client went away")
            server = scope.get("server")
            return await self.admin.handle(request, server_host=server[0] if server else None)
        if not self.ready:
            return _error(503, "SERVER:NOT_READY", "the runtime is not ready")
        route, path_params, exists = self.runtime.routes.match(method, path)
        if route is None:
            if exists:
                return _error(405, "SERVER:METHOD_NOT_ALLOWED", f"{method} is not allowed on {path}")
            return _error(404, "SERVER:NOT_FOUND", f"no flow listens on {path}")
        inbound = await self._request(scope, receive, path_params)
        if inbound is None:
            return _error(499, "SERVER:CLIENT_GONE", "the client went away")
        refusal = await check_policies(self.policies, inbound) if self.policies else None
        if refusal is not None:
            return refusal
        try:
            return await route.endpoint(inbound)
        except StoreUnavailableError as exc:  # nothing was kept: the sender must send it again
            logger.warning("endpoint %s: the store is unavailable (%s); answered 503", path,
                           exc.message)
            response = _error(503, exc.error_type, "the store is unavailable; try again")
            response.headers["Retry-After"] = "5"
            return response
        except Exception as exc:  # never a traceback to the caller
            logger.exception("endpoint %s failed", path)
            return _error(500, "SERVER:INTERNAL", f"internal error ({type(exc).__name__})")

    async def _request(self, scope: Scope, receive: Receive,
                       path_params: Mapping[str, str]) -> HttpRequest | None:
        """The request with its whole body (``None`` when the client went away meanwhile).

        A body larger than :attr:`max_body_size`, or not in full within :attr:`body_timeout`
        seconds, is answered 413 / 408 (raised as :class:`_Refused`, which ``__call__`` answers).
        """
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_size:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        more = True
        with anyio.move_on_after(self.body_timeout) as waiting:
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body_size:
                    raise self._too_large()
                chunks.append(chunk)
                more = message.get("more_body", False)
        if waiting.cancelled_caught:
            raise _closing(408, "SERVER:REQUEST_TIMEOUT",
                           f"the request body did not arrive within {self.body_timeout:g} s")
        client = scope.get("client")
        query = scope.get("query_string", b"")
        return HttpRequest(
            method=scope["method"], path=scope["path"], headers=headers,
            query=dict(parse_qsl(query.decode("latin-1"))) if query else {},
            body=b"".join(chunks), path_params=path_params, client=client[0] if client else None,
        )

    def _too_large(self) -> _Refused:
        return _closing(413, "SERVER:BODY_TOO_LARGE",
                        f"the request body is larger than {self.max_body_size} bytes")

    async def _readiness(self) -> HttpResponse:
        """``GET /ready``: 200 when the server runs, the store answers (and is writable and sound),
        every trigger runs (or stands by for another replica) and every connection can
        authenticate; else 503. Either way the JSON says what was checked, and ``reasons`` names in
        one line each what is not ready (:mod:`runtime.server.readiness`)."""
        ready, body = await self.readiness.check(serving=self.ready)
        return HttpResponse(200 if ready else 503, body)

    def _metrics(self) -> HttpResponse:
        """``GET /metrics``: the runtime's metrics in Prometheus' text format, unauthenticated like
        ``/health`` (scrapers reach it on an internal network; it names flows, never data)."""
        from runtime.metrics import CONTENT_TYPE

        metrics = self.runtime.resources.metrics
        return HttpResponse(200, metrics.exposition(), headers={"content-type": CONTENT_TYPE})

    @staticmethod
    async def _send(send: Send, response: HttpResponse, *, head: bool) -> None:
        body = response.body
        headers = {k.lower(): v for k, v in response.headers.items()}
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str) and "content-type" not in headers:
            data = body.encode("utf-8")
            headers["content-type"] = "text/plain; charset=utf-8"
        else:
            status = response.status
            try:
                data = dumps_bytes(body)
            except (TypeError, ValueError, RecursionError) as exc:  # a payload JSON cannot hold
                logger.error("the answer could not be written as JSON: %s: %s", type(exc).__name__, exc)
                status, data = 500, dumps_bytes({"error": {
                    "type": "SERVER:INTERNAL", "message": "the answer could not be written as JSON"}})
            response = HttpResponse(status, body, response.headers)
            headers.setdefault("content-type", "application/json")
        headers["content-length"] = str(len(data))
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                                for k, v in headers.items()]})
        await send({"type": "http.response.body", "body": b"" if head else data})


def _give_up_waiting(runtime: SpliceRuntime) -> None:
    """Past the drain deadline, nothing waits for a store lock another process holds (the SQLite
    store can stop waiting; a store without that method has nothing to stop)."""
    give_up = getattr(runtime.store, "give_up_waiting", None)
    if give_up is not None:
        give_up()


def create_app(runtime: SpliceRuntime, *, drain_timeout: float = 30.0,
               on_ready: Callable[[SpliceRuntime], Any] | None = None,
               sandbox: Mapping[str, Any] | None = None) -> SpliceApp:
    """The server app for an open runtime (policies and body limits are read here, so bad ones
    fail early)."""
    return SpliceApp(runtime, drain_timeout=drain_timeout, on_ready=on_ready, sandbox=sandbox)

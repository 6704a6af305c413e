"""The ASGI app of ``splice serve``: health, readiness, and every route the flows' triggers register.

``/health`` is liveness (the process answers); ``/ready`` says whether this server can do its work:
the store answers and accepts writes, every trigger runs and every connection can authenticate,
with a JSON body naming what is not ready; ``/metrics``
is the runtime's Prometheus metrics.

The app serves an already opened :class:`runtime.service.SpliceRuntime` (so start-up problems are
reported before any server starts). Its lifespan starts every trigger and, on shutdown (SIGTERM
through uvicorn), stops the triggers and lets in-flight executions finish within the drain timeout.
Requests to trigger routes pass the API policies first.

It is a plain ASGI callable rather than a web framework's app: it does one thing (hand a request to
the route a trigger registered), and on the hot path of a listener flow every layer shows up in the
messages per second.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import anyio

from runtime.context import HttpRequest, HttpResponse
from runtime.jsonutil import dumps_bytes
from runtime.server.admin import ADMIN_PREFIX, AdminApi, admin_key
from runtime.server.policies import Policy, build_policies, check_policies
from runtime.server.readiness import Readiness
from runtime.service import SpliceRuntime

__all__ = ["SpliceApp", "create_app"]

logger = logging.getLogger("splice.server")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _error(status: int, kind: str, message: str) -> HttpResponse:
    return HttpResponse(status, {"error": {"type": kind, "message": message}})


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
            runtime.project.settings.server.get("policies"))
        #: ``/admin/...`` (executions, dead letters, status), with its own authentication.
        self.admin = AdminApi(runtime, key=admin_key(runtime.project.settings.server),
                              sandbox=sandbox)

    # -- lifespan ----------------------------------------------------------------------------------

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
                logger.info("shutting down: stopping triggers, draining in-flight executions")
                if not await runtime.drain(self.drain_timeout):
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
        response = await self._handle(scope, receive)
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
        refusal = check_policies(self.policies, inbound) if self.policies else None
        if refusal is not None:
            return refusal
        try:
            return await route.endpoint(inbound)
        except Exception as exc:  # never a traceback to the caller
            logger.exception("endpoint %s failed", path)
            return _error(500, "SERVER:INTERNAL", f"internal error ({type(exc).__name__})")

    @staticmethod
    async def _request(scope: Scope, receive: Receive,
                       path_params: Mapping[str, str]) -> HttpRequest | None:
        """The request with its whole body (``None`` when the client went away meanwhile)."""
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
        client = scope.get("client")
        query = scope.get("query_string", b"")
        return HttpRequest(
            method=scope["method"], path=scope["path"],
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            query=dict(parse_qsl(query.decode("latin-1"))) if query else {},
            body=body, path_params=path_params, client=client[0] if client else None,
        )

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
            data = dumps_bytes(body)
            headers.setdefault("content-type", "application/json")
        headers["content-length"] = str(len(data))
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                                for k, v in headers.items()]})
        await send({"type": "http.response.body", "body": b"" if head else data})


def create_app(runtime: SpliceRuntime, *, drain_timeout: float = 30.0,
               on_ready: Callable[[SpliceRuntime], Any] | None = None,
               sandbox: Mapping[str, Any] | None = None) -> SpliceApp:
    """The server app for an open runtime (policies are built here, so bad ones fail early)."""
    return SpliceApp(runtime, drain_timeout=drain_timeout, on_ready=on_ready, sandbox=sandbox)

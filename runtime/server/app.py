"""The ASGI app of ``splice serve``: health, readiness, and every route the flows' triggers register.

The app serves an already opened :class:`runtime.service.SpliceRuntime` (so start-up problems are
reported before any server starts). Its lifespan starts every trigger and, on shutdown (SIGTERM
through uvicorn), stops the triggers and lets in-flight executions finish within the drain timeout.
Requests to trigger routes pass the API policies first.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runtime.context import HttpRequest, HttpResponse
from runtime.jsonutil import dumps
from runtime.server.policies import Policy, build_policies, check_policies
from runtime.service import SpliceRuntime

__all__ = ["create_app"]

logger = logging.getLogger("splice.server")

_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _to_starlette(response: HttpResponse) -> Response:
    body = response.body
    headers = dict(response.headers)
    if isinstance(body, bytes):
        return Response(body, response.status, headers=headers)
    if isinstance(body, str) and "content-type" not in {k.lower() for k in headers}:
        return Response(body, response.status, headers=headers, media_type="text/plain")
    return Response(dumps(body), response.status, headers=headers, media_type="application/json")


def _error(status: int, kind: str, message: str) -> Response:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def create_app(runtime: SpliceRuntime, *, drain_timeout: float = 30.0,
               on_ready: Callable[[SpliceRuntime], Any] | None = None) -> Starlette:
    """The server app for an open runtime (policies are built here, so bad ones fail early)."""
    state: dict[str, Any] = {
        "runtime": runtime, "ready": False,
        "policies": build_policies(runtime.project.settings.server.get("policies")),
    }

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run_triggers)
            state["ready"] = True
            if on_ready is not None:
                on_ready(runtime)
            try:
                yield
            finally:
                state["ready"] = False
                logger.info("shutting down: stopping triggers, draining in-flight executions")
                runtime.request_stop()
                with anyio.move_on_after(drain_timeout) as scope:
                    await runtime.triggers_done.wait()
                if scope.cancelled_caught:
                    logger.warning("drain timeout (%.0fs) reached; cancelling what is left",
                                   drain_timeout)
                    tg.cancel_scope.cancel()

    async def health(request: Request) -> Response:
        body = {"status": "ok", "flows": len(runtime.project.flows),
                "connections": await runtime.status()}
        return Response(dumps(body), 200, media_type="application/json")

    async def ready(request: Request) -> Response:
        if state["ready"]:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    async def dispatch(request: Request) -> Response:
        if not state["ready"]:
            return _error(503, "SERVER:NOT_READY", "the runtime is not ready")
        route, path_params, exists = runtime.routes.match(request.method, request.url.path)
        if route is None:
            if exists:
                return _error(405, "SERVER:METHOD_NOT_ALLOWED",
                              f"{request.method} is not allowed on {request.url.path}")
            return _error(404, "SERVER:NOT_FOUND", f"no flow listens on {request.url.path}")
        inbound = HttpRequest(
            method=request.method, path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params), body=await request.body(), path_params=path_params,
            client=request.client.host if request.client else None,
        )
        policies: list[Policy] = state["policies"]
        refusal = check_policies(policies, inbound)
        if refusal is not None:
            return _to_starlette(refusal)
        try:
            return _to_starlette(await route.endpoint(inbound))
        except Exception as exc:  # never a traceback to the caller
            logger.exception("endpoint %s failed", request.url.path)
            return _error(500, "SERVER:INTERNAL", f"internal error ({type(exc).__name__})")

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/{path:path}", dispatch, methods=_ALL_METHODS),
        ],
        lifespan=lifespan,
    )

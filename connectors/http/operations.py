"""``http.request``: one HTTP call through the connection's pooled client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from connectors.http.config import CONNECTION_PARAMS
from connectors.http.errors import raise_for_status
from runtime import (
    DRY_RUN_ID,
    ConnectionContext,
    ConnectionSpec,
    HttpError,
    OperationContext,
    OperationSpec,
    Param,
    RetryOptions,
    json_dumps_bytes,
    json_loads,
    map_http_errors,
)

__all__ = ["CONNECTION", "REQUEST", "open_connection", "request_writes"]


@asynccontextmanager
async def open_connection(settings: dict[str, Any], ctx: ConnectionContext
                          ) -> AsyncIterator[httpx.AsyncClient]:
    """One pooled ``httpx.AsyncClient`` for the connection's lifetime (settings typed, secrets
    registered for redaction by the runtime)."""
    auth: httpx.Auth | None = None
    headers = {str(k): str(v) for k, v in (settings.get("headers") or {}).items()}
    if settings.get("bearer-token"):
        headers["Authorization"] = f"Bearer {settings['bearer-token']}"
    elif settings.get("username"):
        auth = httpx.BasicAuth(settings["username"], settings.get("password") or "")
    attempts: int = settings["retry-attempts"]
    client = ctx.create_http_client(
        base_url=settings.get("base-url") or "",
        auth=auth,
        headers=headers,
        timeout=settings["timeout"],
        verify=settings["verify-tls"],
        max_connections=settings["max-connections"],
        retry=RetryOptions(attempts=attempts) if attempts > 0 else None,
    )
    async with client:
        yield client


def _decode(response: httpx.Response, mode: str) -> Any:
    if mode == "text":
        return response.text
    content_type = response.headers.get("content-type", "")
    if mode == "json" or "json" in content_type:
        if not response.content:
            return None
        try:
            return json_loads(response.content)
        except ValueError as exc:
            raise HttpError(f"{response.request.method} {response.request.url.path} answered "
                            f"invalid JSON: {exc}", error_type="HTTP:INVALID_RESPONSE",
                            status=response.status_code) from None
    return response.text


async def request(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """Send the request; the decoded response body (or status, headers and body) is the result."""
    client: httpx.AsyncClient = ctx.connection
    body = params.get("body")
    kwargs: dict[str, Any] = {}
    headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()}
    if isinstance(body, str | bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["content"] = json_dumps_bytes(body)
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    if params.get("timeout") is not None:
        kwargs["timeout"] = params["timeout"]
    method = str(params["method"]).upper()
    with map_http_errors("HTTP"):
        response = await client.request(method, str(params["path"]),
                                        params=params.get("query") or None,
                                        headers=headers or None, **kwargs)
    ctx.annotate(http_status=response.status_code)
    if params["fail-on-error"]:
        raise_for_status(response)
    payload = _decode(response, str(params["response"]))
    if params.get("output") == "full":
        return {"status": response.status_code, "headers": dict(response.headers), "body": payload}
    return payload


def request_writes(params: Any) -> bool:
    """With methods other than GET and HEAD."""
    return str(params.get("method") or "GET").upper() not in ("GET", "HEAD")


async def preview_request(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """The request it would send (method, path, query and body), answered by a stand-in body."""
    target = {"path": str(params["path"]), "query": params.get("query") or None}
    ctx.would_write(str(params["method"]).upper(), target, params.get("body"))
    body = {"id": DRY_RUN_ID, "dryRun": True}
    if params.get("output") == "full":
        return {"status": None, "headers": {}, "body": body}
    return body


REQUEST = OperationSpec(
    name="request",
    handler=request,
    writes=request_writes,
    preview=preview_request,
    summary="Send an HTTP request through a pooled connection",
    output="The response body (JSON decoded when the response says JSON), or with output: full "
           "an object with status, headers and body",
    params=(
        Param("method", default="GET", enum=("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"),
              summary="HTTP method"),
        Param("path", required=True, summary="Path appended to the connection's base-url, or a "
              "full URL"),
        Param("query", type="object", summary="Query parameters"),
        Param("headers", type="object", summary="Extra request headers"),
        Param("body", type="any", summary="Request body: objects and lists are sent as JSON, "
              "strings as they are"),
        Param("timeout", type="duration", summary="Overrides the connection's timeout"),
        Param("response", default="auto", enum=("auto", "json", "text"),
              summary="How to decode the response body"),
        Param("output", default="body", enum=("body", "full"), summary="body, or status+headers+body"),
        Param("fail-on-error", type="boolean", default=True,
              summary="Raise HTTP:<KIND> for 4xx/5xx instead of returning the response"),
    ),
)

CONNECTION = ConnectionSpec(params=CONNECTION_PARAMS, open=open_connection,
                            summary="A pooled HTTP client with timeouts, retries and TLS checks")
